package consumer

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// seqLedger hands out a new run id per claim, as the real ledger does for distinct runs.
type seqLedger struct {
	fakeLedger
	next atomic.Int64
}

func (s *seqLedger) ClaimRun(context.Context, job.Envelope, string, string, time.Duration, ledger.Priority) (ledger.Claim, error) {
	return ledger.Claim{Outcome: ledger.Claimed, RunID: s.next.Add(1), Attempt: 1, Status: ledger.StatusRunning}, nil
}

// gateRegistry's handler counts how many run at once and blocks until release is closed or
// its context ends.
type gateRegistry struct {
	release       chan struct{}
	running, peak atomic.Int32
	started       atomic.Int32
}

func (*gateRegistry) Known(string) bool { return true }
func (g *gateRegistry) Prepare(job.Envelope) (job.Prepared, error) {
	return func(ctx context.Context, _ int64, _ int) (any, error) {
		g.started.Add(1)
		n := g.running.Add(1)
		defer g.running.Add(-1)
		for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
		}
		select {
		case <-g.release:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}, nil
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Many messages in hand, few handlers at once: max_running bounds the handlers, and every
// waiting run still runs once a slot frees.
func TestMaxRunningBoundsHandlersNotMessages(t *testing.T) {
	t.Parallel()
	l := &seqLedger{}
	g := &gateRegistry{release: make(chan struct{})}
	p := NewProcessor(Config{Node: "n", Goroutines: 20, MaxRunning: 3}, l, g, nil, nil, nil, discard(), time.Now)
	var wg sync.WaitGroup
	decisions := make([]Decision, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			decisions[i] = p.Process(context.Background(), Delivery{Body: body(t)})
		}()
	}
	// The handlers that have a slot start on goroutines of their own: wait for them too.
	require.Eventually(t, func() bool { return p.InFlight() == 20 && g.running.Load() == 3 }, 5*time.Second, time.Millisecond,
		"all 20 claimed and held, max_running of them running")
	close(g.release)
	wg.Wait()
	require.Equal(t, int32(3), g.peak.Load())
	require.Equal(t, int32(20), g.started.Load())
	for _, d := range decisions {
		require.Equal(t, Ack, d.Action)
	}
	require.Len(t, l.finished, 20)
}

// On drain a run waiting for a slot is not started: it is recorded interrupted at once and
// handed back to the broker, while the running one gets its drain deadline.
func TestDrainHandsBackRunsThatNeverStarted(t *testing.T) {
	t.Parallel()
	l := &seqLedger{}
	g := &gateRegistry{release: make(chan struct{})}
	p := NewProcessor(Config{Node: "n", MaxRunning: 1, DrainTimeout: 200 * time.Millisecond}, l, g, nil, nil, nil,
		discard(), time.Now)
	results := make(chan Decision, 2)
	for range 2 {
		go func() { results <- p.Process(context.Background(), Delivery{Body: body(t)}) }()
	}
	require.Eventually(t, func() bool { return p.InFlight() == 2 && g.running.Load() == 1 }, 5*time.Second, time.Millisecond)

	interrupted := p.Drain(context.Background())
	require.Equal(t, 1, interrupted, "only the run that started needed interrupting after the deadline")
	for range 2 {
		d := <-results
		require.Equal(t, RetryLater, d.Action, d.Reason)
	}
	require.Equal(t, int32(1), g.started.Load(), "the waiting run never started")
	require.Equal(t, []ledger.Status{ledger.StatusInterrupted, ledger.StatusInterrupted}, l.finished)
}

func TestConfigRejectsMoreHandlersThanMessages(t *testing.T) {
	t.Parallel()
	c := Config{Node: "n", Goroutines: 4, MaxRunning: 8}.WithDefaults()
	require.ErrorContains(t, c.Validate(), "max_running: 8 is outside 1..goroutines (4)")
	c = Config{Node: "n", LedgerBatch: -1}.WithDefaults()
	require.ErrorContains(t, c.Validate(), "ledger_batch")
}
