package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/runlog"
)

// runState is where a claimed run is on its way through execute.
type runState int

const (
	waiting runState = iota // for its time (a timer) or a handler slot (slotGate's queue)
	started                 // its handler has a slot and a goroutine
	over                    // stopped before it started, or its outcome is being recorded
)

// run is one claimed attempt in hand. While it waits it is this struct alone: its context,
// cancel func and goroutine are made when it starts, its log buffer when its handler logs.
type run struct {
	ctx       context.Context // the delivery's
	lane      Lane
	env       job.Envelope
	spec      job.Spec
	prepared  job.Prepared
	claim     ledger.Claim
	msgID     string
	node      string // this node, for the run log's first line
	claimSent time.Time
	done      func(Decision) // called once with the run's decision

	// Guarded by Processor.mu.
	state runState
	timer *time.Timer // holds a run claimed before its time
	// aliveAt is when the ledger last saw this run's heartbeat, on this node's clock: the send
	// time of the claim or of the last heartbeat that refreshed it (both earlier than the
	// database's heartbeat_at, so stopping by it is on the safe side).
	aliveAt time.Time
	stopped bool                    // stopUnheard stopped it
	cancel  context.CancelCauseFunc // once started

	started time.Time                     // when its handler started; set before the handler runs
	logOnce sync.Once                     // makes logs (Buffer)
	logs    atomic.Pointer[runlog.Buffer] // what the handler logs, once it logs
}

// submit puts a claimed run in hand: heartbeated from now on, held until its time, then given
// a handler slot.
func (p *Processor) submit(r *run) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// This node may still be finishing an earlier attempt of the same run: one cut off from
	// the ledger stops its attempt, and once the ledger is back it can claim the run's next
	// attempt before the earlier one has recorded its (now lost) outcome. The newer attempt
	// owns the entry; the earlier one is over (its claim is gone) and must not touch it.
	if old, ok := p.running[r.claim.RunID]; ok && old.claim.Attempt < r.claim.Attempt {
		p.stopLocked(old, ledger.ErrLostClaim)
	}
	p.running[r.claim.RunID] = r
	if p.draining {
		p.stopLocked(r, errDraining)
		return
	}
	// A run claimed while its message was held waits for its time first (see early).
	if wait := r.env.ScheduledAt.Sub(p.now()); wait > 0 {
		r.timer = time.AfterFunc(wait, func() { p.due(r) })
		return
	}
	p.dueLocked(r)
}

// due is called by r's timer.
func (p *Processor) due(r *run) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.state == waiting {
		p.dueLocked(r)
	}
}

// dueLocked starts r if a slot is free, else queues it for the next one.
func (p *Processor) dueLocked(r *run) {
	if p.slots.take(r.lane == LaneSchedule) {
		p.startLocked(r)
		return
	}
	p.slots.queue(r)
}

// startLocked gives r, which holds a slot, its context and goroutine. No handler starts once
// the drain began: BeginDrain stops every waiting run under the same lock.
func (p *Processor) startLocked(r *run) {
	ctx, cancel := context.WithCancelCause(r.ctx)
	r.state, r.cancel = started, cancel
	go p.execute(ctx, r)
}

// stopLocked stops r with cause: a started run through its context; a waiting one leaves its
// timer or queue and is recorded as not started.
func (p *Processor) stopLocked(r *run, cause error) {
	switch r.state {
	case started:
		r.cancel(cause)
	case waiting:
		if r.timer != nil {
			r.timer.Stop()
		}
		p.slots.remove(r)
		r.state = over
		runErr := fmt.Errorf("not started: %w", cause)
		if errors.Is(cause, errDraining) {
			// Claimed but never started: handed back rather than started during shutdown.
			runErr = errors.New("not started: node is shutting down")
		}
		go func() {
			r.done(p.recordSafely(r, attempt{start: r.claimSent, elapsed: p.now().Sub(r.claimSent), err: runErr, cause: cause}))
		}()
	}
}

// endRun marks r's handler returned (a cancel now changes nothing) and hands its slot to the
// next waiting run.
func (p *Processor) endRun(r *run) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r.state = over
	r.cancel(nil)
	if next := p.slots.release(); next != nil {
		p.startLocked(next)
	}
}

// execute runs r's handler in the slot it holds, then records the outcome.
func (p *Processor) execute(ctx context.Context, r *run) {
	start := p.now()
	// The summary line ("run finished") carries the schedule delay too; this one is for
	// following a run that is still going, at a cost per run that only debug pays.
	if p.log.Enabled(ctx, slog.LevelDebug) {
		p.log.DebugContext(ctx, "run started", "run_id", r.claim.RunID, "job", r.env.Job,
			"schedule_delay", start.Sub(r.env.ScheduledAt))
	}
	r.started = start
	result, err := p.invoke(runlog.WithSource(ctx, r), r.spec.Timeout, r.claim, r.prepared)
	cause := context.Cause(ctx)
	p.endRun(r)
	r.done(p.recordSafely(r, attempt{start: start, elapsed: p.now().Sub(start), result: result, err: err, cause: cause, started: true}))
}

// invoke runs the handler under the job's timeout and turns a panic into an error: a
// panicking handler would otherwise block its queue's offset in the client for 15 minutes.
func (p *Processor) invoke(ctx context.Context, timeout time.Duration, claim ledger.Claim, prepared job.Prepared) (result any, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	result, err = prepared(ctx, claim.RunID, claim.Attempt)
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("handler returned after its deadline: %w", ctx.Err())
	}
	return result, err
}

// unregister takes r out of the runs in hand once its outcome is recorded.
func (p *Processor) unregister(r *run) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Only this attempt's own entry: deleting a newer attempt's would stop its heartbeat, and
	// another node would take over a run that is still running here (twice at once).
	if p.running[r.claim.RunID] == r {
		delete(p.running, r.claim.RunID)
	}
}
