package consumer

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// Claimed runs waiting for a handler slot cost no goroutine each: with one slot and 200 runs
// in hand the node's goroutines grow by a handful, not by 200. Every run in hand is still
// heartbeated, and an operator's cancel stops a run that never started (recorded cancelled,
// acknowledged) while the others wait on. Not parallel: it counts the process's goroutines.
func TestWaitingRunsAreNotGoroutines(t *testing.T) {
	const n = 200
	l := newBatchLedger()
	release := make(chan struct{})
	started := make(chan string, n)
	reg := keyRegistry{handlers: map[string]func(context.Context) (any, error){}}
	bodies := make([][]byte, n)
	for i := range bodies {
		key := fmt.Sprintf("k%03d", i)
		bodies[i] = keyBody(t, key)
		reg.handlers[key] = func(ctx context.Context) (any, error) {
			started <- key
			select {
			case <-release:
				return nil, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	spec := job.Spec{MaxAttempts: 3, Overlap: job.OverlapAllow}.WithDefaults()
	p := NewProcessor(Config{Node: "n", MaxRunning: 1, Goroutines: 1000, StaleAfter: time.Minute}, l, reg,
		map[string]job.Spec{"probe": spec}, &recPublisher{}, nil, discard(), time.Now)

	before := runtime.NumGoroutine()
	done := make(chan []Decision, 1)
	go func() { done <- p.ProcessBatch(context.Background(), deliveries(bodies...)) }()
	first := <-started
	require.Eventually(t, func() bool { return p.InFlight() == n }, 5*time.Second, time.Millisecond, "every run claimed and in hand")
	grew := runtime.NumGoroutine() - before
	require.Less(t, grew, 20, "%d runs in hand, one running: the goroutines grew by %d", n, grew)

	hb := &heartbeatCount{batchLedger: l}
	p.ledger = hb
	// The claims were written now: the heartbeat skips runs claimed a quarter interval ago.
	p.now = func() time.Time { return time.Now().Add(time.Minute) }
	require.NoError(t, p.Heartbeat(context.Background()))
	require.Equal(t, n, hb.sent, "every run in hand is heartbeated, waiting ones too")

	waiting := "k199"
	if first == waiting {
		waiting = "k198"
	}
	l.mu.Lock()
	l.cancels[l.ids[waiting]] = "alice"
	l.mu.Unlock()
	require.NoError(t, p.Heartbeat(context.Background()))
	require.Eventually(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.outcomes[waiting] == ledger.StatusCancelled && p.InFlight() == n-1
	}, 5*time.Second, time.Millisecond, "the cancel stopped a run that was waiting for a slot")

	close(release)
	decisions := <-done
	for i, d := range decisions {
		require.Equal(t, Ack, d.Action, "%d: %s", i, d.Reason)
	}
	require.Contains(t, decisions[199].Reason+decisions[198].Reason, "alice")
	require.Zero(t, p.InFlight())
}

// heartbeatCount counts the claims a heartbeat sends.
type heartbeatCount struct {
	*batchLedger
	sent int
}

func (h *heartbeatCount) Heartbeat(_ context.Context, _ string, claims []ledger.Claim) ([]int64, error) {
	h.sent = len(claims)
	return nil, nil
}
