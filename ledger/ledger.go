package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatplat/job-service/job"
)

// Status is the state of a run in job_runs.
type Status string

// Run statuses. Terminal ones are succeeded, failed, rejected and skipped.
const (
	StatusScheduled   Status = "scheduled"   // published by the ticker, not yet taken
	StatusRunning     Status = "running"     // a node holds it and heartbeats
	StatusRetrying    Status = "retrying"    // an attempt failed; RocketMQ will redeliver
	StatusSucceeded   Status = "succeeded"   //
	StatusFailed      Status = "failed"      // attempts exhausted or the handler discarded it
	StatusRejected    Status = "rejected"    // the message could never run (malformed, unknown job)
	StatusSkipped     Status = "skipped"     // overlap or misfire policy said not to run it
	StatusInterrupted Status = "interrupted" // the node shut down mid-run; redelivered
	StatusAbandoned   Status = "abandoned"   // the node vanished (heartbeat stale); republished
)

// Terminal reports whether no further attempt will change the run.
func (s Status) Terminal() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusRejected, StatusSkipped, StatusCancelled:
		return true
	}
	return false
}

// ErrNotFound is returned when a run does not exist.
var ErrNotFound = errors.New("run not found")

// Ledger is the Postgres ledger. It is safe for concurrent use.
type Ledger struct {
	db *pgxpool.Pool
	// sections are the jobs' config sections (config.Config.Sections): a run recorded here
	// (forced, retried, backfilled) stands for the period its job's section names (job.Pin).
	sections map[string]any
}

// New returns a ledger on pool. Call Migrate first.
func New(pool *pgxpool.Pool) *Ledger { return &Ledger{db: pool} }

// WithSections returns the ledger deciding what the runs it records stand for by the jobs'
// config sections (config.Config.Sections), so a forced run of daily_stats names its day and a
// retry keeps it. Without them, a run stands for the instant it was asked for.
func (l *Ledger) WithSections(sections map[string]any) *Ledger {
	c := *l
	c.sections = sections
	return &c
}

// Pool exposes the pool for components that share it (health checks).
func (l *Ledger) Pool() *pgxpool.Pool { return l.db }

// Run is one row of job_runs.
type Run struct {
	ID          int64           `json:"id"`
	Job         string          `json:"job"`
	RunKey      string          `json:"run_key"`
	ShardIndex  int             `json:"shard_index"`
	ShardTotal  int             `json:"shard_total"`
	Trigger     string          `json:"trigger"`
	ScheduledAt time.Time       `json:"scheduled_at"`
	Params      json.RawMessage `json:"params"`
	RequestedBy string          `json:"requested_by"`
	Status      Status          `json:"status"`
	Attempt     int             `json:"attempt"`
	Node        string          `json:"node"`
	MsgID       string          `json:"msg_id"`
	StartedAt   *time.Time      `json:"started_at,omitempty"`
	FinishedAt  *time.Time      `json:"finished_at,omitempty"`
	HeartbeatAt *time.Time      `json:"heartbeat_at,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
	Error       string          `json:"error,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	// LogicalStart and LogicalEnd are the interval the run stands for (job.Interval); nil on a
	// row a node of an older release wrote, which stands for what its params and scheduled_at say.
	LogicalStart *time.Time `json:"logical_start,omitempty"`
	LogicalEnd   *time.Time `json:"logical_end,omitempty"`
	// BackfillID is the backfill that made the run, 0 for any other run.
	BackfillID int64 `json:"backfill_id,omitempty"`
}

// Interval is the interval the run stands for, zero when no one recorded it.
func (r Run) Interval() job.Interval {
	if r.LogicalStart == nil || r.LogicalEnd == nil {
		return job.Interval{}
	}
	return job.Interval{Start: *r.LogicalStart, End: *r.LogicalEnd}
}

// Duration is how long the run took, or zero while it has not finished.
func (r Run) Duration() time.Duration {
	if r.StartedAt == nil || r.FinishedAt == nil {
		return 0
	}
	return r.FinishedAt.Sub(*r.StartedAt)
}

const runColumns = `id, job, run_key, shard_index, shard_total, trigger, scheduled_at, params, requested_by,
	status, attempt, node, msg_id, started_at, finished_at, heartbeat_at, result, error, created_at, updated_at,
	logical_start, logical_end, backfill_id`

func scanRun(row pgx.Row) (Run, error) {
	var r Run
	var result []byte
	var backfill *int64
	err := row.Scan(&r.ID, &r.Job, &r.RunKey, &r.ShardIndex, &r.ShardTotal, &r.Trigger, &r.ScheduledAt,
		&r.Params, &r.RequestedBy, &r.Status, &r.Attempt, &r.Node, &r.MsgID, &r.StartedAt, &r.FinishedAt,
		&r.HeartbeatAt, &result, &r.Error, &r.CreatedAt, &r.UpdatedAt, &r.LogicalStart, &r.LogicalEnd, &backfill)
	if result != nil {
		r.Result = result
	}
	if backfill != nil {
		r.BackfillID = *backfill
	}
	return r, err
}

func collectRuns(rows pgx.Rows) ([]Run, error) {
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func paramsOrEmpty(p json.RawMessage) json.RawMessage {
	if len(p) == 0 {
		return json.RawMessage("{}")
	}
	return p
}

// RecordScheduled inserts the scheduled row for env unless one exists. It reports whether
// this call inserted it: only then may the caller publish, which is how a restart or a new
// leader avoids publishing an occurrence twice.
//
// The row records the interval the occurrence stands for (daily_stats' day before it, or the
// occurrence itself); the message is left as the ticker built it, whose scheduled time names
// the same interval to the handler.
func (l *Ledger) RecordScheduled(ctx context.Context, env job.Envelope) (bool, error) {
	_, iv, err := l.pin(env, env.ScheduledAt)
	if err != nil {
		return false, fmt.Errorf("record scheduled %s/%s#%d: %w", env.Job, env.RunKey, env.Shard.Index, err)
	}
	tag, err := l.db.Exec(ctx, `
		INSERT INTO job_runs (job, run_key, shard_index, shard_total, trigger, scheduled_at, params, requested_by, status,
			logical_start, logical_end)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'scheduled', $9, $10)
		ON CONFLICT (job, run_key, shard_index) DO NOTHING`,
		env.Job, env.RunKey, env.Shard.Index, env.Shard.Total, string(env.Trigger), env.ScheduledAt,
		paramsOrEmpty(env.Params), env.RequestedBy, iv.Start, iv.End)
	if err != nil {
		return false, fmt.Errorf("record scheduled %s/%s#%d: %w", env.Job, env.RunKey, env.Shard.Index, err)
	}
	return tag.RowsAffected() == 1, nil
}

// MarkPublished stores where the broker put a scheduled row's message (its id, broker and
// queue), which also tells the ticker that the publish went through.
func (l *Ledger) MarkPublished(ctx context.Context, env job.Envelope, rc job.Receipt) error {
	_, err := l.db.Exec(ctx, `
		UPDATE job_runs SET msg_id = $4, msg_broker = $5, msg_queue = $6, updated_at = now()
		WHERE job = $1 AND run_key = $2 AND shard_index = $3 AND msg_id = ''`,
		env.Job, env.RunKey, env.Shard.Index, rc.MsgID, rc.Broker, queueOrUnknown(rc))
	if err != nil {
		return fmt.Errorf("mark published %s/%s#%d: %w", env.Job, env.RunKey, env.Shard.Index, err)
	}
	return nil
}

// queueOrUnknown is the queue a receipt names, -1 when it names no broker (a publisher that
// does not say where the message went).
func queueOrUnknown(rc job.Receipt) int {
	if rc.Broker == "" {
		return -1
	}
	return rc.Queue
}

// unpublishedSQL follows the run columns: scheduled runs whose publish never completed,
// among those in job_runs_inflight (see reapStaleSQL). OFFSET 0 plans the in-flight rows on
// their own, so statistics cannot lead the planner to the index on created_at instead.
const unpublishedSQL = ` FROM (SELECT * FROM job_runs WHERE id = ANY (ARRAY(SELECT id FROM job_runs_inflight)) OFFSET 0) j
	WHERE j.status = 'scheduled' AND j.msg_id = '' AND j.created_at < now() - $1::interval
	ORDER BY j.scheduled_at LIMIT $2`

// Unpublished returns scheduled rows whose publish never completed (the leader died between
// insert and send, or the broker refused). The ticker publishes them again.
func (l *Ledger) Unpublished(ctx context.Context, olderThan time.Duration, limit int) ([]Run, error) {
	rows, err := l.db.Query(ctx, `SELECT `+prefixed("j.", runColumns)+unpublishedSQL, olderThan.String(), limit)
	if err != nil {
		return nil, fmt.Errorf("list unpublished runs: %w", err)
	}
	return collectRuns(rows)
}

// LastScheduled returns the newest scheduled_at the ticker recorded for jobName, or the zero
// time when it never scheduled it. Rows retention pruned count too: it keeps the newest
// occurrence it deleted of each job (job_cursors).
func (l *Ledger) LastScheduled(ctx context.Context, jobName string) (time.Time, error) {
	var t *time.Time
	err := l.db.QueryRow(ctx, `SELECT greatest(
			(SELECT max(scheduled_at) FROM job_runs WHERE job = $1 AND trigger = 'schedule'),
			(SELECT occurrence FROM job_cursors WHERE job = $1))`,
		jobName).Scan(&t)
	if err != nil {
		return time.Time{}, fmt.Errorf("last scheduled occurrence of %s: %w", jobName, err)
	}
	if t == nil {
		return time.Time{}, nil
	}
	return *t, nil
}

// RecordSkipped writes a terminal skipped row (misfire or overlap), with why in result.
func (l *Ledger) RecordSkipped(ctx context.Context, env job.Envelope, node string, why any) error {
	result, err := json.Marshal(why)
	if err != nil {
		return fmt.Errorf("encode skip reason: %w", err)
	}
	tx, err := l.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("record skipped %s/%s: %w", env.Job, env.RunKey, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	// A retrying run keeps its last attempt in its row; the skip overwrites the row, so that
	// attempt moves to job_past_attempts first, as a claim would move it.
	_, err = tx.Exec(ctx, `
		INSERT INTO job_past_attempts (run_id, attempt, node, msg_id, started_at, finished_at, outcome, error)
		SELECT id, attempt, node, msg_id, started_at, updated_at, status, error FROM job_runs
		WHERE job = $1 AND run_key = $2 AND shard_index = $3 AND status = 'retrying' AND attempt > 0
			AND started_at IS NOT NULL
		FOR UPDATE
		ON CONFLICT (run_id, attempt) DO NOTHING`, env.Job, env.RunKey, env.Shard.Index)
	if err != nil {
		return fmt.Errorf("record skipped %s/%s: keep the last attempt: %w", env.Job, env.RunKey, err)
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO job_runs (job, run_key, shard_index, shard_total, trigger, scheduled_at, params, requested_by,
			status, node, finished_at, result)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'skipped', $9, now(), $10)
		ON CONFLICT (job, run_key, shard_index) DO UPDATE SET status = 'skipped', node = EXCLUDED.node,
			finished_at = now(), result = EXCLUDED.result, updated_at = now()
		WHERE job_runs.status IN ('scheduled', 'retrying')`,
		env.Job, env.RunKey, env.Shard.Index, env.Shard.Total, string(env.Trigger), env.ScheduledAt,
		paramsOrEmpty(env.Params), env.RequestedBy, node, result)
	if err != nil {
		return fmt.Errorf("record skipped %s/%s: %w", env.Job, env.RunKey, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("record skipped %s/%s: %w", env.Job, env.RunKey, err)
	}
	return nil
}

// Rejection describes a message that can never run.
type Rejection struct {
	Job    string // the job named by the message, its tag, or "unknown"
	RunKey string // the message's run key when it had one; kept in the result
	MsgID  string
	Node   string
	Reason string
	Body   []byte // kept (truncated) so an operator can see what was sent
}

// RecordRejected writes a rejected row. The row is keyed by the body's hash: a redelivered
// copy of the same bad message, or the same run published again by the repair pass and
// rejected again, updates one row (counting the times in result.times) instead of adding one
// per message, so repeats cannot grow the ledger.
func (l *Ledger) RecordRejected(ctx context.Context, r Rejection) error {
	const maxBody = 4096
	body := r.Body
	if len(body) > maxBody {
		body = body[:maxBody]
	}
	// The row is keyed by message id, never by the run key the message claimed: a bad copy
	// of a real run's message must not touch that run's row.
	result, err := json.Marshal(map[string]any{"body": pgText(string(body)), "run_key": pgText(r.RunKey), "times": 1})
	if err != nil {
		return fmt.Errorf("encode rejected body: %w", err)
	}
	sum := sha256.Sum256(r.Body)
	_, err = l.db.Exec(ctx, `
		INSERT INTO job_runs (job, run_key, trigger, scheduled_at, status, node, msg_id, finished_at, result, error)
		VALUES ($1, $2, 'manual', now(), 'rejected', $3, $4, now(), $5, $6)
		ON CONFLICT (job, run_key, shard_index) DO UPDATE SET updated_at = now(), msg_id = EXCLUDED.msg_id,
			node = EXCLUDED.node, error = EXCLUDED.error,
			result = jsonb_set(coalesce(job_runs.result, '{}'), '{times}',
				to_jsonb(coalesce((job_runs.result->>'times')::int, 1) + 1))`,
		pgText(r.Job), "rejected:"+hex.EncodeToString(sum[:16]), r.Node, r.MsgID, result, pgText(r.Reason))
	if err != nil {
		return fmt.Errorf("record rejected message %s: %w", r.MsgID, err)
	}
	return nil
}

// pgText makes untrusted bytes storable in text and jsonb: Postgres refuses NUL (also as
// \u0000 in jsonb) and invalid UTF-8, and a rejected message that cannot be recorded would be
// redelivered again and again instead of being acknowledged.
func pgText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// overdueSQL finds scheduled runs past their time by $1 that no node claimed, through
// job_runs_inflight, and stamps them; the run columns follow RETURNING.
const overdueSQL = `
		WITH overdue AS (
			SELECT j.id FROM job_runs j
			WHERE j.id = ANY (ARRAY(SELECT id FROM job_runs_inflight))
			  AND j.status = 'scheduled' AND j.msg_id <> ''
			  AND j.scheduled_at < now() - $1::interval AND j.updated_at < now() - $1::interval
			ORDER BY j.scheduled_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		UPDATE job_runs r SET updated_at = now()
		FROM overdue WHERE r.id = overdue.id
		RETURNING `

// TouchOverdue returns scheduled runs whose time passed more than overdueAfter ago and that no
// node has claimed (their message was accepted by the broker but never consumed, or lost with
// a broker's disk), and stamps them so the next repair pass waits another overdueAfter. The
// ticker publishes them again; a copy that does arrive late is harmless, the claim dedups it.
func (l *Ledger) TouchOverdue(ctx context.Context, overdueAfter time.Duration, limit int) ([]Run, error) {
	rows, err := l.db.Query(ctx, overdueSQL+prefixed("r.", runColumns), overdueAfter.String(), limit)
	if err != nil {
		return nil, fmt.Errorf("list overdue runs: %w", err)
	}
	return collectRuns(rows)
}
