package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/runlog"
)

// RunSyncer is the ledger's side of run logs and cancel requests. The processor uses it when
// its Ledger has it (ledger.Ledger and GroupCommit do; unit-test fakes may not).
type RunSyncer interface {
	SyncRuns(ctx context.Context, running []int64, logs []ledger.LogBatch) (map[int64]string, error)
	TrimRunLogs(ctx context.Context, runID int64, maxLines, maxBytes int) error
}

// Retrier re-runs a failed run as a new linked run (ledger.Ledger.Retry).
type Retrier interface {
	Retry(ctx context.Context, id int64, by, runKey string, publish ledger.PublishFunc) (ledger.Run, bool, error)
}

// syncRuns writes the runs' new log lines and stops the runs an operator cancelled (waiting
// ones too), in one statement per heartbeat for all runs of the node.
func (p *Processor) syncRuns(ctx context.Context) error {
	syncer, ok := p.ledger.(RunSyncer)
	if !ok {
		return nil
	}
	p.mu.Lock()
	ids := make([]int64, 0, len(p.running))
	var batches []ledger.LogBatch
	taken := map[*runlog.Buffer][]runlog.Line{}
	for id, r := range p.running {
		ids = append(ids, id)
		buf := r.logs.Load()
		if buf == nil {
			continue
		}
		b, lines := batchOf(r.claim, buf)
		if len(lines) > 0 || b.FirstSeq > 1 {
			batches, taken[buf] = append(batches, b), lines
		}
	}
	p.mu.Unlock()
	cancels, err := syncer.SyncRuns(ctx, ids, batches)
	if err != nil {
		for buf, lines := range taken {
			buf.Unflush(lines)
		}
		return fmt.Errorf("sync runs: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, by := range cancels {
		if r, ok := p.running[id]; ok {
			p.log.InfoContext(ctx, "cancel requested; stopping the run", "run_id", id, "job", r.env.Job,
				"run_key", r.env.RunKey, "shard", r.env.Shard.Index, "attempt", r.claim.Attempt, "by", by)
			p.stopLocked(r, &ledger.CancelledError{By: by})
		}
	}
	return nil
}

// dlqPrefix starts the topic of a message an operator resends from the dead-letter queue (the
// RocketMQ dashboard's "resend" hands it to a consumer of the group directly).
const dlqPrefix = "%DLQ%"

// retryDeadLetter answers a resent dead letter of a failed or cancelled run: the operator
// wants it run again, so it is retried as a new run linked to it (as jobctl retry does), once
// per dead letter however often it is resent.
func (p *Processor) retryDeadLetter(ctx context.Context, log *slog.Logger, d Delivery, c ledger.Claim) Decision {
	r, ok := p.ledger.(Retrier)
	if !ok {
		return Decision{Action: Ack, Reason: "already " + string(c.Status)}
	}
	publish := func(ctx context.Context, env job.Envelope) (string, error) {
		return p.pub.Publish(ctx, env, time.Time{})
	}
	run, created, err := r.Retry(ctx, c.RunID, "dlq-resend", ledger.DLQRetryKey(c.RunID, d.MsgID), publish)
	if err != nil && !errors.Is(err, ledger.ErrNotRetryable) {
		log.WarnContext(ctx, "retry of a resent dead letter failed, will try again", "run_id", c.RunID, "err", err)
		return Decision{Action: RetryLater, After: p.retryPolicy().after(d.ReconsumeTimes + 1), Reason: err.Error()}
	}
	if err != nil {
		return Decision{Action: Ack, Reason: "already " + string(c.Status)}
	}
	log.InfoContext(ctx, "dead letter resent: run retried as a new run", "run_id", c.RunID,
		"retry_run_id", run.ID, "retry_run_key", run.RunKey, "created", created)
	return Decision{Action: Ack, Reason: fmt.Sprintf("retried as run %d", run.ID)}
}

func fromDLQ(d Delivery) bool { return strings.HasPrefix(d.Topic, dlqPrefix) }
