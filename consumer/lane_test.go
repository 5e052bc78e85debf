package consumer

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// laneLedger is batchLedger that also records, per run key, whether its claim and its outcome
// were asked for with priority (ledger.First).
type laneLedger struct {
	*batchLedger
	pmu           sync.Mutex
	claimPriority map[string]bool
	finishPrio    map[string]bool
}

func newLaneLedger() *laneLedger {
	return &laneLedger{batchLedger: newBatchLedger(), claimPriority: map[string]bool{}, finishPrio: map[string]bool{}}
}

func (l *laneLedger) ClaimRuns(ctx context.Context, stale time.Duration, prio ledger.Priority, reqs []ledger.ClaimRequest) ([]ledger.ClaimResult, error) {
	l.pmu.Lock()
	for _, r := range reqs {
		l.claimPriority[r.Env.RunKey] = prio == ledger.First
	}
	l.pmu.Unlock()
	return l.batchLedger.ClaimRuns(ctx, stale, prio, reqs)
}

func (l *laneLedger) ClaimRun(ctx context.Context, env job.Envelope, node, msgID string, stale time.Duration, prio ledger.Priority) (ledger.Claim, error) {
	res, err := l.ClaimRuns(ctx, stale, prio, []ledger.ClaimRequest{{Env: env, Node: node, MsgID: msgID}})
	if err != nil {
		return ledger.Claim{}, err
	}
	return res[0].Claim, nil
}

func (l *laneLedger) Finish(ctx context.Context, c ledger.Claim, o ledger.Outcome, prio ledger.Priority) error {
	l.mu.Lock()
	key := l.keys[c.RunID]
	l.mu.Unlock()
	l.pmu.Lock()
	l.finishPrio[key] = prio == ledger.First
	l.pmu.Unlock()
	return l.batchLedger.Finish(ctx, c, o, prio)
}

func (l *laneLedger) claimed(key string) (claimed, priority bool) {
	l.pmu.Lock()
	defer l.pmu.Unlock()
	priority, claimed = l.claimPriority[key]
	return claimed, priority
}

// startOrder runs every "probe" message's handler in the order the slots let them start,
// recording that order; forced runs (run key "f…") block until release gets a value.
type startOrder struct {
	mu      sync.Mutex
	started []string
	release chan struct{}
}

func (*startOrder) Known(kind string) bool { return kind == "probe" }
func (s *startOrder) Prepare(env job.Envelope) (job.Prepared, error) {
	return func(ctx context.Context, _ int64, _ int) (any, error) {
		s.mu.Lock()
		s.started = append(s.started, env.RunKey)
		s.mu.Unlock()
		if env.RunKey[0] != 'f' {
			return nil, nil
		}
		select {
		case <-s.release:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}, nil
}

func (s *startOrder) order() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.started...)
}

func fireBody(t *testing.T, key string) []byte {
	b, err := job.Encode(job.Envelope{Job: "probe", RunKey: key, Trigger: job.TriggerSchedule,
		ScheduledAt: time.Now().Add(-time.Millisecond), Shard: job.Shard{Total: 1}})
	require.NoError(t, err)
	return b
}

// A forced backlog holds every token of the job lane and every handler slot, and more
// forced runs wait claimed for a slot: a fire on the schedule lane is still claimed at once
// (its lane's tokens are its own, its claim has priority), and the first slot that frees is
// the fire's, not the forced run's that waited longer. Its outcome has priority too.
func TestFireOvertakesAForcedBacklog(t *testing.T) {
	t.Parallel()
	l := newLaneLedger()
	reg := &startOrder{release: make(chan struct{})}
	spec := job.Spec{MaxAttempts: 1, Overlap: job.OverlapAllow}.WithDefaults()
	p := NewProcessor(Config{Node: "n", Goroutines: 6, ScheduleGoroutines: 2, MaxRunning: 2}, l, reg,
		map[string]job.Spec{"probe": spec}, &recPublisher{}, nil, discard(), time.Now)

	// 20 forced runs on the job lane: 2 run (blocked), 4 wait claimed for a slot, 14 wait
	// unclaimed for a token.
	forced := make([][]byte, 20)
	for i := range forced {
		forced[i] = keyBody(t, "f"+string(rune('a'+i)))
	}
	fds := deliveries(forced...)
	forcedDone := make(chan []Decision, 1)
	go func() { forcedDone <- p.ProcessLane(context.Background(), LaneJobs, fds) }()
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(reg.order()) == 2 && len(p.slots.rest) == 4 && len(p.inHand[LaneJobs]) == 6
	}, 5*time.Second, time.Millisecond, "the job lane's tokens and the slots taken by the backlog")

	sds := deliveries(fireBody(t, "sched:probe@1"))
	fireDone := make(chan []Decision, 1)
	go func() { fireDone <- p.ProcessLane(context.Background(), LaneSchedule, sds) }()
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.slots.first) == 1
	}, 5*time.Second, time.Millisecond, "the fire claimed and waiting for a slot while the backlog waits for tokens")
	claimed, priority := l.claimed("sched:probe@1")
	require.True(t, claimed)
	require.True(t, priority, "the fire's claim goes ahead of the group commit's queue")

	reg.release <- struct{}{} // one forced run ends: its slot is the fire's
	require.Equal(t, []Action{Ack}, actions(<-fireDone))
	require.Equal(t, "sched:probe@1", reg.order()[2], "the freed slot went to the fire, before 4 forced runs that waited longer")
	l.pmu.Lock()
	require.True(t, l.finishPrio["sched:probe@1"], "the fire's outcome goes ahead of the queue too")
	l.pmu.Unlock()

	close(reg.release)
	for _, d := range <-forcedDone {
		require.Equal(t, Ack, d.Action, d.Reason)
	}
	require.Len(t, reg.order(), 21, "every forced run still ran")
	for i := range forced {
		_, priority := l.claimed("f" + string(rune('a'+i)))
		require.False(t, priority, "forced runs of the job lane have no priority")
	}
}

// A fire that arrives on the job topic (a ticker older than the schedule topic) and a forced
// run that arrives on the schedule topic are still processed: the lane decides the tokens and
// the priority, never whether a message runs.
func TestEitherLaneRunsEitherKindOfMessage(t *testing.T) {
	t.Parallel()
	l := newLaneLedger()
	p := batchProcessor(l, keyRegistry{}, 2)
	jobs := deliveries(fireBody(t, "sched:old-ticker"))
	sched := deliveries(keyBody(t, "manual:on-schedule-topic"))
	require.Equal(t, []Action{Ack}, actions(p.ProcessLane(context.Background(), LaneJobs, jobs)))
	require.Equal(t, []Action{Ack}, actions(p.ProcessLane(context.Background(), LaneSchedule, sched)))
	l.mu.Lock()
	defer l.mu.Unlock()
	require.Equal(t, map[string]ledger.Status{"sched:old-ticker": ledger.StatusSucceeded,
		"manual:on-schedule-topic": ledger.StatusSucceeded}, l.outcomes)
}

// The held path: a fire delivered ahead of its time waits on a token of the schedule lane,
// never on the job lane's, and is claimed with priority once its time comes.
func TestEarlyFireHoldsAScheduleToken(t *testing.T) {
	t.Parallel()
	l := newLaneLedger()
	p := NewProcessor(Config{Node: "n", Goroutines: 1, ScheduleGoroutines: 1, MaxRunning: 1}, l, keyRegistry{},
		map[string]job.Spec{"probe": job.Spec{Overlap: job.OverlapAllow}.WithDefaults()}, &recPublisher{}, nil, discard(), time.Now)
	p.inHand[LaneJobs] <- struct{}{} // the job lane has no token left
	b, err := job.Encode(job.Envelope{Job: "probe", RunKey: "sched:early", Trigger: job.TriggerSchedule,
		ScheduledAt: time.Now().Add(50 * time.Millisecond), Shard: job.Shard{Total: 1}})
	require.NoError(t, err)
	ds := deliveries(b)
	require.Equal(t, []Action{Ack}, actions(p.ProcessLane(context.Background(), LaneSchedule, ds)))
	claimed, priority := l.claimed("sched:early")
	require.True(t, claimed)
	require.True(t, priority)
	l.mu.Lock()
	defer l.mu.Unlock()
	require.Equal(t, ledger.StatusSucceeded, l.outcomes["sched:early"])
}

// The slot gate: fires first, then the others, each queue in order; a waiter that gives up
// leaves the queue, and a slot nobody waits for is free again.
func TestSlotGateOrder(t *testing.T) {
	t.Parallel()
	g := slotGate{free: 1}
	require.True(t, g.take(false), "a free slot is taken at once")
	require.False(t, g.take(true), "no slot is free")
	r1, r2 := &run{lane: LaneJobs}, &run{lane: LaneJobs}
	f1, f2 := &run{lane: LaneSchedule}, &run{lane: LaneSchedule}
	for _, r := range []*run{r1, r2, f1, f2} {
		g.queue(r)
	}
	g.remove(r2)
	require.Same(t, f1, g.release())
	require.Same(t, f2, g.release())
	require.Same(t, r1, g.release())
	require.Nil(t, g.release(), "r2 left the queue: the slot is free again")
	require.True(t, g.take(false))
	g.queue(r2)
	require.False(t, g.take(true), "a run waits: a newcomer does not jump it")
}

// claimClock is laneLedger that also records when each run was claimed.
type claimClock struct {
	*laneLedger
	cmu sync.Mutex
	at  map[string]time.Time
}

func (l *claimClock) ClaimRuns(ctx context.Context, stale time.Duration, prio ledger.Priority, reqs []ledger.ClaimRequest) ([]ledger.ClaimResult, error) {
	l.cmu.Lock()
	for _, r := range reqs {
		l.at[r.Env.RunKey] = time.Now()
	}
	l.cmu.Unlock()
	return l.laneLedger.ClaimRuns(ctx, stale, prio, reqs)
}

func (l *claimClock) ClaimRun(ctx context.Context, env job.Envelope, node, msgID string, stale time.Duration, prio ledger.Priority) (ledger.Claim, error) {
	l.cmu.Lock()
	l.at[env.RunKey] = time.Now()
	l.cmu.Unlock()
	return l.laneLedger.ClaimRun(ctx, env, node, msgID, stale, prio)
}

// A fire delivered ahead of its time (ticker.deliver_ahead) is claimed while its message is
// held, and its handler starts at scheduled_at, not before; a run with an overlap check is
// claimed only at its time (the check must see the runs in flight then). The drain hands a
// held run back without starting it.
func TestHeldFireIsClaimedDuringTheHold(t *testing.T) {
	t.Parallel()
	l := &claimClock{laneLedger: newLaneLedger(), at: map[string]time.Time{}}
	starts := map[string]time.Time{}
	var smu sync.Mutex
	reg := keyRegistry{handlers: map[string]func(context.Context) (any, error){}}
	for _, k := range []string{"sched:allow", "sched:skip"} {
		reg.handlers[k] = func(context.Context) (any, error) {
			smu.Lock()
			starts[k] = time.Now()
			smu.Unlock()
			return nil, nil
		}
	}
	newProc := func(overlap job.OverlapPolicy) *Processor {
		return NewProcessor(Config{Node: "n", MaxRunning: 2}, l, reg,
			map[string]job.Spec{"probe": job.Spec{Overlap: overlap}.WithDefaults()}, &recPublisher{}, nil, discard(), time.Now)
	}
	heldFire := func(key string, at time.Time) []Delivery {
		b, err := job.Encode(job.Envelope{Job: "probe", RunKey: key, Trigger: job.TriggerSchedule, ScheduledAt: at,
			Shard: job.Shard{Total: 1}})
		require.NoError(t, err)
		ds := deliveries(b)
		return ds
	}

	at := time.Now().Add(200 * time.Millisecond)
	require.Equal(t, []Action{Ack}, actions(newProc(job.OverlapAllow).ProcessLane(context.Background(), LaneSchedule, heldFire("sched:allow", at))))
	l.cmu.Lock()
	require.True(t, l.at["sched:allow"].Before(at), "claimed during the hold")
	l.cmu.Unlock()
	smu.Lock()
	require.False(t, starts["sched:allow"].Before(at), "the handler starts at scheduled_at, not before")
	smu.Unlock()

	at = time.Now().Add(100 * time.Millisecond)
	require.Equal(t, []Action{Ack}, actions(newProc(job.OverlapSkipIfRunning).ProcessLane(context.Background(), LaneSchedule, heldFire("sched:skip", at))))
	l.cmu.Lock()
	require.False(t, l.at["sched:skip"].Before(at), "an overlap-checked run is claimed at its time")
	l.cmu.Unlock()

	p := newProc(job.OverlapAllow)
	done := make(chan []Decision, 1)
	go func() {
		done <- p.ProcessLane(context.Background(), LaneSchedule, heldFire("sched:drained", time.Now().Add(2*time.Second)))
	}()
	require.Eventually(t, func() bool { return p.InFlight() == 1 }, 5*time.Second, time.Millisecond, "claimed and held")
	require.Zero(t, p.Drain(context.Background()), "a held run never started: nothing to interrupt after the deadline")
	require.Equal(t, []Action{RetryLater}, actions(<-done))
	l.mu.Lock()
	defer l.mu.Unlock()
	require.Equal(t, ledger.StatusInterrupted, l.outcomes["sched:drained"], "handed back, not started")
}
