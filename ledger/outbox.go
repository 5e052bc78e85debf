package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatplat/job-service/job"
)

// ErrRecordedNotPublished wraps a publish that failed after the run was recorded: the run
// exists (scheduled, no message) and the ticker's repair pass publishes it.
var ErrRecordedNotPublished = errors.New("recorded, not yet published (the ticker's repair pass publishes it)")

// pin decides what env stands for, ref being its reference time (job.Pin with the ledger's
// sections).
func (l *Ledger) pin(env job.Envelope, ref time.Time) (job.Envelope, job.Interval, error) {
	return job.Pin(l.sections, env, ref)
}

// newRun is a run about to be recorded: its message, what it stands for and its links.
type newRun struct {
	env      job.Envelope
	iv       job.Interval
	retryOf  int64 // 0: none
	backfill int64 // 0: none
}

// Submit records a forced run (all its shards' envelopes, one run key) as scheduled rows,
// each standing for the period its params name or, without one, the period of its
// scheduled time (the moment it was asked for), then publishes each message and stores its
// id. The rows come first (an outbox): a message that is lost, or dead-letters before any
// node claims it, leaves a row the ticker's repair pass publishes again or gives up as
// failed, never nothing. Params are rewritten to name the period (daily_stats' date), so
// whoever runs the message, whenever, does that period. A *job.RejectError means the params
// do not decode; an error wrapping ErrRecordedNotPublished means the runs exist.
func (l *Ledger) Submit(ctx context.Context, envs []job.Envelope, publish PublishFunc) ([]Run, error) {
	runs := make([]newRun, len(envs))
	for i, env := range envs {
		pinned, iv, err := l.pin(env, env.ScheduledAt)
		if err != nil {
			return nil, err
		}
		runs[i] = newRun{env: pinned, iv: iv}
	}
	recorded, err := l.record(ctx, runs)
	if err != nil {
		return nil, err
	}
	return l.publishRecorded(ctx, recorded, publish)
}

// record inserts runs as scheduled rows in one transaction; a run whose key exists is left as
// it is and not returned.
func (l *Ledger) record(ctx context.Context, runs []newRun) ([]Run, error) {
	tx, err := l.db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("record runs: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	var out []Run
	for _, r := range runs {
		e := r.env
		row, err := scanRun(tx.QueryRow(ctx, `
			INSERT INTO job_runs (job, run_key, shard_index, shard_total, trigger, scheduled_at, params, requested_by,
				status, logical_start, logical_end, retry_of, backfill_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'scheduled', $9, $10, nullif($11, 0), nullif($12, 0))
			ON CONFLICT (job, run_key, shard_index) DO NOTHING
			RETURNING `+runColumns,
			e.Job, e.RunKey, e.Shard.Index, e.Shard.Total, string(e.Trigger), e.ScheduledAt, paramsOrEmpty(e.Params),
			pgText(e.RequestedBy), r.iv.Start, r.iv.End, r.retryOf, r.backfill))
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("record %s/%s#%d: %w", e.Job, e.RunKey, e.Shard.Index, err)
		}
		out = append(out, row)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("record runs: %w", err)
	}
	return out, nil
}

// publishRecorded publishes the messages of recorded runs and stores their ids. On a publish
// error the runs not yet sent stay unpublished rows, for the ticker's repair pass.
func (l *Ledger) publishRecorded(ctx context.Context, runs []Run, publish PublishFunc) ([]Run, error) {
	for i, r := range runs {
		env := r.Envelope()
		msgID, err := publish(ctx, env)
		if err != nil {
			return runs, fmt.Errorf("publish run %d (%s/%s#%d): %w: %w", r.ID, r.Job, r.RunKey, r.ShardIndex,
				ErrRecordedNotPublished, err)
		}
		if err := l.MarkPublished(ctx, env, job.Receipt{MsgID: msgID}); err != nil {
			return runs, err
		}
		runs[i].MsgID = msgID
	}
	return runs, nil
}

// Envelope is the message of the run as recorded.
func (r Run) Envelope() job.Envelope {
	return job.Envelope{Job: r.Job, RunKey: r.RunKey, Trigger: job.Trigger(r.Trigger), ScheduledAt: r.ScheduledAt,
		Shard: job.Shard{Index: r.ShardIndex, Total: r.ShardTotal}, Params: r.Params, RequestedBy: r.RequestedBy}
}
