package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/chatplat/job-service/ledger"
)

// attempt is how one attempt ended, as execute saw it.
type attempt struct {
	start   time.Time // when the handler started (the claim, for a run that never started)
	elapsed time.Duration
	result  any
	err     error // the handler's, or why it never started
	cause   error // the run context's cancel cause
	started bool  // the handler ran
}

// record decides r's outcome (decide), writes it fenced by the attempt, and tells metrics,
// the alerter and the node's log. It returns the broker's decision. The run stays in hand,
// heartbeated, until its outcome is written.
func (p *Processor) record(r *run, at attempt) Decision {
	defer p.unregister(r)
	ctx := r.ctx
	v := decide(at.err, at.cause, r.claim.Attempt, r.spec.MaxAttempts, p.retryPolicy(), p.cfg.StaleAfter)
	if v.status == "" {
		p.runLog(r).WarnContext(ctx, "run taken over by another node; outcome dropped", "err", at.err)
		return v.decision
	}
	// The outcome must reach the ledger even if the node is being torn down.
	finishCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	outcome := ledger.Outcome{Status: v.status, Result: at.result, Err: v.err}
	p.recordOutcome(r, at, &outcome)
	finishErr := p.finish(finishCtx, r, outcome)
	got := decideRecorded(v, finishErr, p.cfg.StaleAfter)
	switch {
	case !got.recorded && errors.Is(finishErr, ledger.ErrLostClaim):
		p.runLog(r).WarnContext(ctx, "run was taken over while it ran; outcome dropped", "status", v.status)
		return got.decision
	case !got.recorded:
		p.runLog(r).ErrorContext(ctx, "could not record outcome; message will be redelivered", "status", v.status, "err", finishErr)
		return got.decision
	case got.status != v.status:
		p.runLog(r).InfoContext(ctx, "run ended after a cancel request; recorded cancelled", "ended", v.status, "err", v.err)
	}
	p.trimLogs(finishCtx, r)
	p.obs.RunFinished(r.env.Job, got.status, at.elapsed, at.start.Sub(r.env.ScheduledAt))
	if got.status == ledger.StatusFailed {
		p.alertFailed(ctx, r, got.err, at.result)
	}
	p.logFinished(ctx, r, got, at)
	return got.decision
}

// recordSafely is record on a goroutine of the node's own (a handler's, once it returned): a
// panic there (an observer's, the ledger client's) would end the process with every run in
// hand, so it is logged and the message comes back, as when an outcome cannot be written.
func (p *Processor) recordSafely(r *run, at attempt) (d Decision) {
	defer func() {
		if v := recover(); v != nil {
			p.runLog(r).Error("recording the outcome panicked; message will be redelivered",
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			d = Decision{Action: RetryLater, After: p.cfg.StaleAfter, Reason: fmt.Sprintf("recording panicked: %v", v)}
		}
	}()
	return p.record(r, at)
}

// finish records an outcome, retrying briefly: a database blip must not turn a finished run
// into a rerun.
func (p *Processor) finish(ctx context.Context, r *run, o ledger.Outcome) error {
	var err error
	for i := 0; i < 5; i++ {
		err = p.ledger.Finish(ctx, r.claim, o, r.lane.priority())
		if err == nil || errors.Is(err, ledger.ErrLostClaim) || errors.Is(err, ledger.ErrRecordedCancelled) {
			return err
		}
		t := time.NewTimer(time.Duration(i+1) * 500 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
	return err
}

// runLog is the node's logger for r, for its rarer lines.
func (p *Processor) runLog(r *run) *slog.Logger {
	return p.log.With("job", r.env.Job, "run_key", r.env.RunKey, "shard", r.env.Shard.Index, "msg_id", r.msgID,
		"run_id", r.claim.RunID, "attempt", r.claim.Attempt)
}

// logFinished writes the node's line about a finished attempt: built as one slice of
// attributes, without a logger of its own or the variadic []any boxing. An attempt that
// succeeded without its handler logging a line gets it at debug level only: at thousands of
// such runs a second, writing it was a tenth of the node's CPU, and the ledger, the metrics
// and the run's log (built from its record) already say it. Every other attempt gets it at
// info (succeeded) or warn.
func (p *Processor) logFinished(ctx context.Context, r *run, v verdict, at attempt) {
	level := slog.LevelInfo
	switch {
	case v.status != ledger.StatusSucceeded:
		level = slog.LevelWarn
	case r.logs.Load() == nil:
		level = slog.LevelDebug
	}
	if !p.log.Enabled(ctx, level) {
		return
	}
	attrs := [10]slog.Attr{slog.String("job", r.env.Job), slog.String("run_key", r.env.RunKey),
		slog.Int("shard", r.env.Shard.Index), slog.String("msg_id", r.msgID), slog.Int64("run_id", r.claim.RunID),
		slog.Int("attempt", r.claim.Attempt), slog.String("status", string(v.status)),
		slog.Int64("duration_ms", at.elapsed.Milliseconds()), slog.Duration("schedule_delay", at.start.Sub(r.env.ScheduledAt))}
	n := 9
	if v.err != nil {
		attrs[9], n = slog.String("err", v.err.Error()), 10
	}
	p.log.LogAttrs(ctx, level, "run finished", attrs[:n]...)
}
