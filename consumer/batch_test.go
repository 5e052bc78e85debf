package consumer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// batchLedger claims in batches, as ledger.GroupCommit does: one run id per run key, the
// attempt the case sets (default 1). It records every claim call, outcome and rejection, and
// hands out the cancel requests the case sets at the next sync.
type batchLedger struct {
	fakeLedger
	mu         sync.Mutex
	attempts   map[string]int
	ids        map[string]int64
	keys       map[int64]string
	claimCalls []int
	outcomes   map[string]ledger.Status
	rejected   int
	cancels    map[int64]string
}

func newBatchLedger() *batchLedger {
	return &batchLedger{attempts: map[string]int{}, ids: map[string]int64{}, keys: map[int64]string{},
		outcomes: map[string]ledger.Status{}, cancels: map[int64]string{}}
}

func (l *batchLedger) ClaimRuns(_ context.Context, _ time.Duration, _ ledger.Priority, reqs []ledger.ClaimRequest) ([]ledger.ClaimResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.claimCalls = append(l.claimCalls, len(reqs))
	out := make([]ledger.ClaimResult, len(reqs))
	for i, r := range reqs {
		id, ok := l.ids[r.Env.RunKey]
		if !ok {
			id = int64(len(l.ids) + 1)
			l.ids[r.Env.RunKey], l.keys[id] = id, r.Env.RunKey
		}
		out[i].Claim = ledger.Claim{Outcome: ledger.Claimed, RunID: id, Attempt: max(1, l.attempts[r.Env.RunKey]),
			Status: ledger.StatusRunning}
	}
	return out, nil
}

func (l *batchLedger) ClaimRun(ctx context.Context, env job.Envelope, node, msgID string, stale time.Duration, prio ledger.Priority) (ledger.Claim, error) {
	res, err := l.ClaimRuns(ctx, stale, prio, []ledger.ClaimRequest{{Env: env, Node: node, MsgID: msgID}})
	if err != nil {
		return ledger.Claim{}, err
	}
	return res[0].Claim, nil
}

func (l *batchLedger) Finish(_ context.Context, c ledger.Claim, o ledger.Outcome, _ ledger.Priority) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.outcomes[l.keys[c.RunID]] = o.Status
	return nil
}

func (l *batchLedger) RecordRejected(context.Context, ledger.Rejection) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rejected++
	return nil
}

func (l *batchLedger) SyncRuns(_ context.Context, _ []int64, _ []ledger.LogBatch) (map[int64]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.cancels
	l.cancels = map[int64]string{}
	return out, nil
}

func (l *batchLedger) TrimRunLogs(context.Context, int64, int, int) error { return nil }

func (l *batchLedger) id(key string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ids[key]
}

// keyRegistry runs, for the kind "probe", the handler of the message's run key (nil: return
// at once, successfully).
type keyRegistry struct {
	handlers map[string]func(ctx context.Context) (any, error)
}

func (keyRegistry) Known(kind string) bool { return kind == "probe" }
func (r keyRegistry) Prepare(env job.Envelope) (job.Prepared, error) {
	if env.Job != "probe" {
		return nil, &job.RejectError{Field: "job", Reason: "unknown"}
	}
	h := r.handlers[env.RunKey]
	return func(ctx context.Context, _ int64, _ int) (any, error) {
		if h == nil {
			return nil, nil
		}
		return h(ctx)
	}, nil
}

func keyBody(t *testing.T, key string) []byte {
	b, err := job.Encode(job.Envelope{Job: "probe", RunKey: key, Trigger: job.TriggerManual,
		ScheduledAt: time.Now().Add(-time.Second), Shard: job.Shard{Total: 1}})
	require.NoError(t, err)
	return b
}

// deliveries is what the broker adapter hands the processor: messages of the job topic.
func deliveries(bodies ...[]byte) []Delivery {
	ds := make([]Delivery, len(bodies))
	for i, b := range bodies {
		ds[i] = Delivery{Body: b, MsgID: string(rune('a' + i)), Tag: "probe", Topic: "jobs"}
	}
	return ds
}

func batchProcessor(l Ledger, reg Registry, maxRunning int) *Processor {
	spec := job.Spec{MaxAttempts: 3, Overlap: job.OverlapAllow}.WithDefaults()
	return NewProcessor(Config{Node: "n", MaxRunning: maxRunning, Goroutines: 64, RetryBackoff: time.Second,
		RetryBackoffMax: time.Minute}, l, reg, map[string]job.Spec{"probe": spec}, &recPublisher{}, nil, discard(), time.Now)
}

// A batch with one failing run and one malformed message: the well-formed runs are claimed in
// one ledger call, each gets its own outcome, the malformed one is rejected on its own, and
// only the failed run comes back (the settle of these decisions: mq's
// TestSettleSendsBackOnlyTheFailedRun).
func TestBatchPartialFailureSendsBackOnlyTheFailedRun(t *testing.T) {
	t.Parallel()
	l := newBatchLedger()
	reg := keyRegistry{handlers: map[string]func(context.Context) (any, error){
		"bad": func(context.Context) (any, error) { return nil, errors.New("boom") },
	}}
	p := batchProcessor(l, reg, 4)
	ds := deliveries(keyBody(t, "ok1"), keyBody(t, "bad"), []byte(`{"job":`), keyBody(t, "ok2"))

	decisions := p.ProcessBatch(context.Background(), ds)
	require.Equal(t, []Action{Ack, RetryLater, Ack, Ack}, actions(decisions))
	require.Equal(t, "rejected", decisions[2].Reason)
	require.Equal(t, []int{3}, l.claimCalls, "one claim for the three well-formed messages")
	require.Equal(t, map[string]ledger.Status{"ok1": ledger.StatusSucceeded, "bad": ledger.StatusRetrying,
		"ok2": ledger.StatusSucceeded}, l.outcomes)
	require.Equal(t, 1, l.rejected)
}

// A poisoned message (its handler panics on every attempt) on its last attempt, in a batch
// of healthy ones: it is recorded failed and goes to the dead-letter queue; the others
// succeed (the settle: mq's TestSettlePoisonedMessageGoesToTheDeadLetterQueueAlone).
func TestBatchPoisonedMessageGoesToTheDeadLetterQueueAlone(t *testing.T) {
	t.Parallel()
	l := newBatchLedger()
	l.attempts["poison"] = 3
	reg := keyRegistry{handlers: map[string]func(context.Context) (any, error){
		"poison": func(context.Context) (any, error) { panic("poisoned") },
	}}
	p := batchProcessor(l, reg, 2)
	ds := deliveries(keyBody(t, "a"), keyBody(t, "poison"), keyBody(t, "b"))

	decisions := p.ProcessBatch(context.Background(), ds)
	require.Equal(t, []Action{Ack, DeadLetter, Ack}, actions(decisions))
	require.Contains(t, decisions[1].Reason, "handler panicked")
	require.Equal(t, map[string]ledger.Status{"a": ledger.StatusSucceeded, "poison": ledger.StatusFailed,
		"b": ledger.StatusSucceeded}, l.outcomes)
}

// An operator cancels one run of a batch while it runs: that run ends cancelled (no retry),
// the others of the batch succeed, and the batch is consumed with nothing sent back.
func TestBatchCancelOfOneRunLeavesTheOthers(t *testing.T) {
	t.Parallel()
	l := newBatchLedger()
	started := make(chan struct{})
	reg := keyRegistry{handlers: map[string]func(context.Context) (any, error){
		"long": func(ctx context.Context) (any, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		},
	}}
	p := batchProcessor(l, reg, 4)
	ds := deliveries(keyBody(t, "x"), keyBody(t, "long"), keyBody(t, "y"))
	done := make(chan []Decision, 1)
	go func() { done <- p.ProcessBatch(context.Background(), ds) }()
	<-started
	l.mu.Lock()
	l.cancels[l.ids["long"]] = "alice"
	l.mu.Unlock()
	require.NoError(t, p.Heartbeat(context.Background()))
	decisions := <-done
	require.Equal(t, []Action{Ack, Ack, Ack}, actions(decisions))
	require.Contains(t, decisions[1].Reason, "alice")
	require.Equal(t, map[string]ledger.Status{"x": ledger.StatusSucceeded, "long": ledger.StatusCancelled,
		"y": ledger.StatusSucceeded}, l.outcomes)
	require.NotZero(t, l.id("long"))
}

// The handlers of a batch run in goroutines of their own, at most max_running at once, and
// every one of them runs.
func TestBatchRunsHandlersInParallelUnderMaxRunning(t *testing.T) {
	t.Parallel()
	l := newBatchLedger()
	g := &gateRegistry{release: make(chan struct{})}
	p := NewProcessor(Config{Node: "n", MaxRunning: 3, Goroutines: 64}, l, g,
		map[string]job.Spec{"probe": job.Spec{Overlap: job.OverlapAllow}.WithDefaults()}, nil, nil, discard(), time.Now)
	keys := []string{"k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"}
	bodies := make([][]byte, len(keys))
	for i, k := range keys {
		bodies[i] = keyBody(t, k)
	}
	ds := deliveries(bodies...)
	done := make(chan []Decision, 1)
	go func() { done <- p.ProcessBatch(context.Background(), ds) }()
	for g.running.Load() < 3 {
		time.Sleep(time.Millisecond) // polls until three handlers hold their slots
	}
	close(g.release)
	decisions := <-done
	require.Equal(t, int32(3), g.peak.Load(), "max_running bounds the batch's handlers")
	require.Equal(t, int32(len(keys)), g.started.Load())
	for _, d := range decisions {
		require.Equal(t, Ack, d.Action)
	}
	require.Equal(t, []int{len(keys)}, l.claimCalls)
}

// A node that began draining takes no batch: every message goes back.
func TestBatchRefusedWhileDraining(t *testing.T) {
	t.Parallel()
	l := newBatchLedger()
	p := batchProcessor(l, keyRegistry{}, 2)
	p.BeginDrain()
	ds := deliveries(keyBody(t, "a"), keyBody(t, "b"))
	require.Equal(t, []Action{RetryLater, RetryLater}, actions(p.ProcessBatch(context.Background(), ds)))
	require.Empty(t, l.claimCalls)
}

func actions(ds []Decision) []Action {
	out := make([]Action, len(ds))
	for i, d := range ds {
		out[i] = d.Action
	}
	return out
}

// Runs of a skip_if_running job (the default) need the overlap check before their claim:
// in a batch each takes the per-message path, and each still runs.
func TestBatchSkipIfRunningTakesThePerMessagePath(t *testing.T) {
	t.Parallel()
	l := newBatchLedger()
	p := NewProcessor(Config{Node: "n", MaxRunning: 2, Goroutines: 64}, l, keyRegistry{},
		map[string]job.Spec{"probe": job.Spec{}.WithDefaults()}, nil, nil, discard(), time.Now)
	ds := deliveries(keyBody(t, "a"), keyBody(t, "b"))
	require.Equal(t, []Action{Ack, Ack}, actions(p.ProcessBatch(context.Background(), ds)))
	require.Equal(t, []int{1, 1}, l.claimCalls)
	require.Equal(t, map[string]ledger.Status{"a": ledger.StatusSucceeded, "b": ledger.StatusSucceeded}, l.outcomes)
}

// A long run holds its delivery until it ends; another delivery still gets claimed and run
// meanwhile, as long as messages in hand stay within goroutines.
func TestBatchLongRunDoesNotHoldOtherDeliveries(t *testing.T) {
	t.Parallel()
	l := newBatchLedger()
	release := make(chan struct{})
	reg := keyRegistry{handlers: map[string]func(context.Context) (any, error){
		"long": func(ctx context.Context) (any, error) {
			select {
			case <-release:
				return nil, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	}}
	p := NewProcessor(Config{Node: "n", MaxRunning: 2, Goroutines: 3}, l, reg,
		map[string]job.Spec{"probe": job.Spec{Overlap: job.OverlapAllow}.WithDefaults()}, nil, nil, discard(), time.Now)
	first := deliveries(keyBody(t, "long"))
	longDone := make(chan []Decision, 1)
	go func() { longDone <- p.ProcessBatch(context.Background(), first) }()
	second := deliveries(keyBody(t, "s1"), keyBody(t, "s2"), keyBody(t, "s3"), keyBody(t, "s4"))
	// Two tokens are left beside the long run's: the four short runs go two by two.
	require.Equal(t, []Action{Ack, Ack, Ack, Ack}, actions(p.ProcessBatch(context.Background(), second)))
	select {
	case <-longDone:
		t.Fatal("the long run ended before it was released")
	default:
	}
	close(release)
	require.Equal(t, []Action{Ack}, actions(<-longDone))
	require.Equal(t, ledger.StatusSucceeded, l.outcomes["s4"])
}
