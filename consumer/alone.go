package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// msgLog is the node's logger for a's message; built only on the paths that log.
func (p *Processor) msgLog(a *admitted) *slog.Logger {
	return p.log.With("job", a.env.Job, "run_key", a.env.RunKey, "shard", a.env.Shard.Index, "msg_id", a.d.MsgID)
}

// alone takes a message that needs more than the delivery's shared claim through every step
// before its claim, one by one, then runs it (waiting for its decision).
func (p *Processor) alone(ctx context.Context, lane Lane, a *admitted) Decision {
	if a.err != nil {
		return p.reject(ctx, a.d, a.env, a.err)
	}
	if early := a.env.ScheduledAt.Sub(p.now()); early > 0 {
		if d, done := p.early(ctx, lane, a, early); done {
			return d
		}
	}
	// A resent dead letter is an operator's request about its own run, not a new occurrence
	// that could overlap: it goes to the claim (see retryDeadLetter).
	if a.spec.Overlap == job.OverlapSkipIfRunning && !fromDLQ(a.d) {
		if d, done := p.overlap(ctx, a); done {
			return d
		}
	}
	return p.claimAlone(ctx, lane, a)
}

// claimAlone claims a's run on its own and runs it.
func (p *Processor) claimAlone(ctx context.Context, lane Lane, a *admitted) Decision {
	claimSent := p.now()
	claim, err := p.ledger.ClaimRun(ctx, a.env, p.cfg.Node, a.d.MsgID, p.cfg.StaleAfter, lane.priority())
	d, r := p.claimed(ctx, lane, a, claim, err, claimSent)
	if r == nil {
		return d
	}
	decided := make(chan Decision, 1)
	r.done = func(d Decision) { decided <- d }
	p.submit(r)
	return <-decided
}

// early handles a message that arrived before its time; done is false when it is now due and
// goes on to the claim.
func (p *Processor) early(ctx context.Context, lane Lane, a *admitted, early time.Duration) (d Decision, done bool) {
	if early > p.cfg.EarlyTolerance {
		// Published without a delay (or by a clock far ahead): hold it in the broker, not here.
		if _, err := p.pub.Publish(ctx, a.env, a.env.ScheduledAt); err != nil {
			p.msgLog(a).WarnContext(ctx, "re-publish of early message failed", "err", err)
			return Decision{Action: RetryLater, After: early, Reason: err.Error()}, true
		}
		p.msgLog(a).InfoContext(ctx, "message arrived early, re-published as timer message", "early", early)
		return Decision{Action: Ack, Reason: "deferred"}, true
	}
	if a.spec.Overlap != job.OverlapSkipIfRunning && !fromDLQ(a.d) {
		// Claimed now, while the message is held (ticker.deliver_ahead): the claim's round
		// trip is then off the fire's path, and execute holds the claimed run until its time
		// (heartbeated and cancellable like any run). The ledger records the attempt's start
		// no earlier than scheduled_at. A run with an overlap check is not: the check must
		// see the runs in flight at the fire time.
		return p.claimAlone(ctx, lane, a), true
	}
	// The timer wheel rounds delivery down to its precision: wait out the remainder so a
	// run never starts before its scheduled time.
	t := time.NewTimer(early)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return Decision{Action: RetryLater, After: time.Second, Reason: "stopping"}, true
	case <-t.C:
		return Decision{}, false
	}
}

// overlap skips or defers a run of a skip_if_running job while another run of the job is in
// flight; done is false when none is and the run goes on to the claim.
func (p *Processor) overlap(ctx context.Context, a *admitted) (d Decision, done bool) {
	busy, err := p.ledger.OtherRunning(ctx, a.env.Job, a.env.RunKey, p.cfg.StaleAfter)
	if err != nil {
		p.msgLog(a).WarnContext(ctx, "overlap check failed, will retry", "err", err)
		return Decision{Action: RetryLater, After: p.retryPolicy().after(a.d.ReconsumeTimes + 1), Reason: err.Error()}, true
	}
	if !busy {
		return Decision{}, false
	}
	skipped, found, err := p.ledger.SkipFresh(ctx, a.env, p.cfg.Node, map[string]string{"skipped": "another run of this job is running"})
	switch {
	case err != nil:
		return Decision{Action: RetryLater, After: p.retryPolicy().after(a.d.ReconsumeTimes + 1), Reason: err.Error()}, true
	case skipped:
		p.msgLog(a).InfoContext(ctx, "skipped: another run is in flight")
		return Decision{Action: Ack, Reason: "skipped"}, true
	case found.Terminal():
		return Decision{Action: Ack, Reason: "already " + string(found)}, true
	}
	// The run already had an attempt (a retry, or a run interrupted by a shutdown): it must
	// still run, so it waits for the other run instead of being skipped.
	p.msgLog(a).InfoContext(ctx, "deferred: another run of this job is in flight", "status", found)
	return Decision{Action: RetryLater, After: p.cfg.StaleAfter, Reason: "deferred behind a running run"}, true
}

// claimed acts on the ledger's answer to the claim of a's run (err: the claim failed): either
// the broker's decision at once, or the run to execute (its decision comes through run.done).
func (p *Processor) claimed(ctx context.Context, lane Lane, a *admitted, claim ledger.Claim, err error,
	claimSent time.Time) (Decision, *run) {
	if err != nil {
		p.msgLog(a).WarnContext(ctx, "claim failed, will retry", "err", err)
		return Decision{Action: RetryLater, After: p.retryPolicy().after(a.d.ReconsumeTimes + 1), Reason: err.Error()}, nil
	}
	switch claim.Outcome {
	case ledger.AlreadyDone:
		if fromDLQ(a.d) && (claim.Status == ledger.StatusFailed || claim.Status == ledger.StatusCancelled) {
			return p.retryDeadLetter(ctx, p.msgLog(a), a.d, claim), nil
		}
		if p.log.Enabled(ctx, slog.LevelInfo) {
			p.msgLog(a).InfoContext(ctx, "duplicate delivery of a finished run, acknowledged", "status", claim.Status)
		}
		return Decision{Action: Ack, Reason: "already " + string(claim.Status)}, nil
	case ledger.HeldElsewhere:
		// Keep the copy alive: if the holder dies, this delivery takes over once its heartbeat is stale.
		return Decision{Action: RetryLater, After: p.cfg.StaleAfter, Reason: "held by another node"}, nil
	case ledger.TooOld:
		// Its run may have run and been pruned since: running it again is what the claim is
		// there to prevent. Recorded rejected, with the reason, like any message that cannot run.
		return p.reject(ctx, a.d, a.env, fmt.Errorf("too old: scheduled at %s, before the ledger's dedup horizon "+
			"(runs are kept for handlers.ledger_retention.runs); not run again", a.env.ScheduledAt.UTC().Format(time.RFC3339))), nil
	}
	return Decision{}, &run{ctx: ctx, lane: lane, env: a.env, spec: a.spec, prepared: a.prepared, claim: claim,
		msgID: a.d.MsgID, node: p.cfg.Node, claimSent: claimSent, aliveAt: claimSent}
}

// reject records a message that cannot run, with the reason, and acknowledges it.
func (p *Processor) reject(ctx context.Context, d Delivery, env job.Envelope, cause error) Decision {
	name := env.Job
	if name == "" {
		name = d.Tag
	}
	if name == "" {
		name = "unknown"
	}
	if len(name) > 64 {
		name = name[:64]
	}
	p.log.WarnContext(ctx, "message rejected", "msg_id", d.MsgID, "job", name, "reason", cause.Error())
	err := p.ledger.RecordRejected(ctx, ledger.Rejection{Job: name, RunKey: env.RunKey, MsgID: d.MsgID,
		Node: p.cfg.Node, Reason: cause.Error(), Body: d.Body})
	if err != nil {
		// Never drop a message we could not record: let the broker bring it back.
		return Decision{Action: RetryLater, After: p.retryPolicy().after(d.ReconsumeTimes + 1), Reason: err.Error()}
	}
	// The metric's label is the kind only when it is a registered one: anyone may publish,
	// and a label per made-up name would grow the registry without bound.
	label := name
	if !p.registry.Known(name) {
		label = "unknown"
	}
	p.obs.MessageRejected(label)
	return Decision{Action: Ack, Reason: "rejected"}
}
