package consumer

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// loseLedger reports the run of one key taken over at every heartbeat.
type loseLedger struct {
	*batchLedger
	key string
}

func (l *loseLedger) Heartbeat(_ context.Context, _ string, claims []ledger.Claim) ([]int64, error) {
	id := l.id(l.key)
	for _, c := range claims {
		if c.RunID == id {
			return []int64{id}, nil
		}
	}
	return nil, nil
}

// Runs waiting for the one handler slot that are taken over or cancelled leave the queue
// holding no slot: each is decided once (the lost one with no outcome recorded), the others
// still run one at a time, and the slot serves a later delivery too.
func TestWaitingRunsStoppedLeaveNoSlotBehind(t *testing.T) {
	t.Parallel()
	bl := newBatchLedger()
	l := &loseLedger{batchLedger: bl, key: "lost"}
	release := make(chan struct{})
	started := make(chan struct{})
	var running, peak atomic.Int32
	count := func(ctx context.Context) (any, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		return nil, nil
	}
	reg := keyRegistry{handlers: map[string]func(context.Context) (any, error){
		"first": func(ctx context.Context) (any, error) {
			close(started)
			<-release
			return count(ctx)
		},
		"lost": count, "cancelled": count, "after1": count, "after2": count, "later1": count, "later2": count,
	}}
	var skew atomic.Int64 // past the heartbeat's young-claim skip
	spec := job.Spec{MaxAttempts: 3, Overlap: job.OverlapAllow}.WithDefaults()
	p := NewProcessor(Config{Node: "n", MaxRunning: 1, Goroutines: 64, StaleAfter: time.Minute}, l, reg,
		map[string]job.Spec{"probe": spec}, &recPublisher{}, nil, discard(),
		func() time.Time { return time.Now().Add(time.Duration(skew.Load())) })

	done := make(chan []Decision, 1)
	go func() {
		done <- p.ProcessBatch(context.Background(), deliveries(keyBody(t, "first"), keyBody(t, "lost"),
			keyBody(t, "cancelled"), keyBody(t, "after1"), keyBody(t, "after2")))
	}()
	<-started
	require.Eventually(t, func() bool { return p.InFlight() == 5 }, 5*time.Second, time.Millisecond)
	bl.mu.Lock()
	bl.cancels[bl.ids["cancelled"]] = "alice"
	bl.mu.Unlock()
	skew.Store(int64(time.Minute))
	require.NoError(t, p.Heartbeat(context.Background()))
	require.Eventually(t, func() bool { return p.InFlight() == 3 }, 5*time.Second, time.Millisecond,
		"the lost and the cancelled run left the runs in hand before a slot freed")
	close(release)
	ds := <-done
	require.Equal(t, []Action{Ack, Ack, Ack, Ack, Ack}, actions(ds))
	require.Equal(t, "taken over", ds[1].Reason)
	require.Contains(t, ds[2].Reason, "alice")
	bl.mu.Lock()
	require.Equal(t, map[string]ledger.Status{"first": ledger.StatusSucceeded, "cancelled": ledger.StatusCancelled,
		"after1": ledger.StatusSucceeded, "after2": ledger.StatusSucceeded}, bl.outcomes, "the lost run's outcome is its new holder's")
	bl.mu.Unlock()

	ds = p.ProcessBatch(context.Background(), deliveries(keyBody(t, "later1"), keyBody(t, "later2")))
	require.Equal(t, []Action{Ack, Ack}, actions(ds))
	require.Equal(t, int32(1), peak.Load(), "one handler at a time throughout")
	p.mu.Lock()
	require.Equal(t, 1, p.slots.free, "the slot is back, and only it")
	require.Empty(t, p.slots.first)
	require.Empty(t, p.slots.rest)
	p.mu.Unlock()
}
