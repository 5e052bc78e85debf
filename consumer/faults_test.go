package consumer

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// gatedClaims blocks each claim until release is closed, after telling claiming.
type gatedClaims struct {
	seqLedger
	claiming chan struct{}
	release  chan struct{}
}

func (g *gatedClaims) ClaimRun(ctx context.Context, env job.Envelope, node, msgID string, stale time.Duration, prio ledger.Priority) (ledger.Claim, error) {
	g.claiming <- struct{}{}
	<-g.release
	return g.seqLedger.ClaimRun(ctx, env, node, msgID, stale, prio)
}

// Once the drain began, no handler starts. A message past the draining
// check, being claimed when the drain begins, finds a free slot and the drain both ready
// (select picks either: the old code started the handler in about half the trials).
func TestNoHandlerStartsOnceTheDrainBegan(t *testing.T) {
	t.Parallel()
	for trial := 0; trial < 40; trial++ {
		l := &gatedClaims{claiming: make(chan struct{}, 1), release: make(chan struct{})}
		g := &gateRegistry{release: make(chan struct{})}
		close(g.release)
		p := NewProcessor(Config{Node: "n", MaxRunning: 4, Goroutines: 8, DrainTimeout: 5 * time.Second}, l, g,
			map[string]job.Spec{"probe": job.Spec{}.WithDefaults()}, nil, nil, discard(), time.Now)
		done := make(chan Decision, 1)
		go func() { done <- p.Process(context.Background(), Delivery{Body: body(t)}) }()
		<-l.claiming
		p.BeginDrain()
		close(l.release)
		d := <-done
		require.Zero(t, g.started.Load(), "trial %d: a handler started after the drain began", trial)
		require.Equal(t, RetryLater, d.Action, "trial %d: the run is handed back", trial)
	}
}

// flakyLedger's heartbeat fails while down is set, as a node cut from Postgres sees it.
type flakyLedger struct {
	seqLedger
	down atomic.Bool
	hung chan struct{} // when not nil, a failing heartbeat hangs until its context ends
}

func (f *flakyLedger) Heartbeat(ctx context.Context, _ string, _ []ledger.Claim) ([]int64, error) {
	if !f.down.Load() {
		return nil, nil
	}
	if f.hung != nil {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, errors.New("connection refused")
}

// A node whose heartbeats stop reaching the ledger cancels its handlers
// before stale_after, after which another node may take the run over; a hanging connection
// does not delay that.
func TestRunsStopBeforeStaleAfterWhenTheLedgerIsUnreachable(t *testing.T) {
	t.Parallel()
	for _, hang := range []bool{false, true} {
		l := &flakyLedger{}
		if hang {
			l.hung = make(chan struct{})
		}
		var cause error
		var stoppedAt time.Time
		reg := &ctxRegistry{fn: func(ctx context.Context) (any, error) {
			<-ctx.Done()
			cause, stoppedAt = context.Cause(ctx), time.Now()
			return nil, ctx.Err()
		}}
		const stale = 1500 * time.Millisecond
		p := NewProcessor(Config{Node: "n", HeartbeatInterval: 100 * time.Millisecond, StaleAfter: stale}, l, reg,
			map[string]job.Spec{"probe": job.Spec{Timeout: time.Minute}.WithDefaults()}, nil, nil, discard(), time.Now)
		ctx, cancel := context.WithCancel(context.Background())
		go p.HeartbeatLoop(ctx)
		done := make(chan Decision, 1)
		go func() { done <- p.Process(context.Background(), Delivery{Body: body(t)}) }()
		require.Eventually(t, func() bool { return p.InFlight() == 1 }, 5*time.Second, time.Millisecond)
		time.Sleep(300 * time.Millisecond) // heartbeats succeed for a while
		l.down.Store(true)
		cut := time.Now()
		var d Decision
		select {
		case d = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("hang=%v: the handler was not stopped", hang)
		}
		cancel()
		require.ErrorIs(t, cause, ErrLedgerUnreachable, "hang=%v", hang)
		require.Less(t, stoppedAt.Sub(cut), stale, "hang=%v: stopped before another node could take the run", hang)
		require.Equal(t, RetryLater, d.Action)
		t.Logf("hang=%v: handler stopped %s after the ledger became unreachable (stale_after %s)", hang,
			stoppedAt.Sub(cut).Round(time.Millisecond), stale)
	}
}

type ctxRegistry struct {
	fn func(ctx context.Context) (any, error)
}

func (*ctxRegistry) Known(string) bool { return true }
func (r *ctxRegistry) Prepare(job.Envelope) (job.Prepared, error) {
	return func(ctx context.Context, _ int64, _ int) (any, error) { return r.fn(ctx) }, nil
}

// busyLedger: another run of the job is running; the run of the message is in state found.
type busyLedger struct {
	fakeLedger
	found ledger.Status
}

func (b *busyLedger) OtherRunning(context.Context, string, string, time.Duration) (bool, error) {
	return true, nil
}

func (b *busyLedger) SkipFresh(context.Context, job.Envelope, string, any) (bool, ledger.Status, error) {
	if b.found == "" {
		return true, ledger.StatusSkipped, nil
	}
	return false, b.found, nil
}

// Under skip_if_running a fresh occurrence is skipped, but a run that
// already had an attempt is deferred (redelivered later), never acknowledged into limbo.
func TestSkipIfRunningDefersRunsThatAlreadyStarted(t *testing.T) {
	t.Parallel()
	specs := map[string]job.Spec{"probe": job.Spec{Overlap: job.OverlapSkipIfRunning}.WithDefaults()}
	for _, c := range []struct {
		found  ledger.Status
		action Action
	}{
		{"", Ack},                              // fresh: skipped
		{ledger.StatusInterrupted, RetryLater}, // started before: deferred
		{ledger.StatusRetrying, RetryLater},
		{ledger.StatusAbandoned, RetryLater},
		{ledger.StatusSucceeded, Ack}, // finished meanwhile: nothing to do
	} {
		p := NewProcessor(Config{Node: "n"}, &busyLedger{found: c.found}, fakeRegistry{}, specs, nil, nil, discard(), time.Now)
		d := p.Process(context.Background(), Delivery{Body: body(t)})
		require.Equal(t, c.action, d.Action, "run found %q: %+v", c.found, d)
	}
}

// slowFinishLedger hands out attempts 1, 2, ... of one run (id 7, as a node that claims the
// run again after losing it); the outcome of attempt 1 hangs until release is closed and is
// then refused as taken over. Heartbeats record the attempts they were sent.
type slowFinishLedger struct {
	fakeLedger
	finishing chan struct{}
	release   chan struct{}
	beats     chan []ledger.Claim
}

func (s *slowFinishLedger) Finish(ctx context.Context, c ledger.Claim, o ledger.Outcome, prio ledger.Priority) error {
	if c.Attempt == 1 {
		close(s.finishing)
		<-s.release
		return ledger.ErrLostClaim
	}
	return s.fakeLedger.Finish(ctx, c, o, prio)
}

func (s *slowFinishLedger) Heartbeat(_ context.Context, _ string, claims []ledger.Claim) ([]int64, error) {
	s.beats <- claims
	return nil, nil
}

// A node cut from the ledger stops attempt 1, whose outcome
// hangs on the dead connection; healed, the node claims attempt 2 of the same run before
// attempt 1's outcome comes back refused. Attempt 1 ending must not drop attempt 2 from the
// runs the node heartbeats: it would go stale while it runs, and another node would run it too.
func TestAnEarlierAttemptEndingKeepsTheNewerOneHeartbeating(t *testing.T) {
	t.Parallel()
	l := &slowFinishLedger{finishing: make(chan struct{}), release: make(chan struct{}), beats: make(chan []ledger.Claim, 1)}
	first := make(chan struct{})
	var calls atomic.Int32
	reg := &ctxRegistry{fn: func(ctx context.Context) (any, error) {
		if calls.Add(1) == 1 {
			close(first)
			return nil, errors.New("stopped") // attempt 1: its handler returns at once
		}
		<-ctx.Done() // attempt 2 runs on
		return nil, ctx.Err()
	}}
	// The heartbeat skips runs claimed less than a quarter interval ago; the clock moves past
	// that before the beat below, so attempt 2 is due one.
	var ahead atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	p := NewProcessor(Config{Node: "n", StaleAfter: time.Minute}, l, reg,
		map[string]job.Spec{"probe": job.Spec{Timeout: time.Minute, MaxAttempts: 3}.WithDefaults()}, nil, nil, discard(), now)
	done1 := make(chan Decision, 1)
	go func() { done1 <- p.Process(context.Background(), Delivery{Body: body(t)}) }()
	<-l.finishing // attempt 1 is recording its outcome
	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	done2 := make(chan Decision, 1)
	go func() { done2 <- p.Process(ctx2, Delivery{Body: body(t)}) }()
	require.Eventually(t, func() bool { return calls.Load() == 2 }, 5*time.Second, time.Millisecond, "attempt 2 to start")
	close(l.release)
	d1 := <-done1
	require.Equal(t, "taken over", d1.Reason)
	ahead.Store(int64(10 * time.Second))
	require.NoError(t, p.Heartbeat(context.Background()))
	beat := <-l.beats
	require.Len(t, beat, 1, "attempt 2 is still heartbeated after attempt 1 ended")
	require.Equal(t, 2, beat[0].Attempt)
	require.Equal(t, 1, p.InFlight())
	select {
	case d := <-done2:
		t.Fatalf("attempt 2 was stopped: %+v", d)
	default:
	}
	stop2()
	<-done2
}

// panickyObserver panics on every finished run.
type panickyObserver struct{ nopObserver }

func (panickyObserver) RunFinished(string, ledger.Status, time.Duration, time.Duration) {
	panic("observer broke")
}

// A panic while recording an outcome (here the metrics observer's) runs on the node's own
// goroutine: it must not end the process; the run's message comes back, and the run leaves
// the hand.
func TestPanicWhileRecordingSendsTheMessageBack(t *testing.T) {
	t.Parallel()
	reg := keyRegistry{handlers: map[string]func(context.Context) (any, error){
		"ok": func(context.Context) (any, error) { return nil, nil },
	}}
	p := batchProcessor(newBatchLedger(), reg, 2)
	p.obs = panickyObserver{}
	ds := p.ProcessBatch(context.Background(), deliveries(keyBody(t, "ok")))
	require.Equal(t, []Action{RetryLater}, actions(ds))
	require.Contains(t, ds[0].Reason, "observer broke")
	require.Zero(t, p.InFlight())
}
