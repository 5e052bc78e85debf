package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatplat/job-service/job"
)

// stuckRunsSQL finds interrupted and retrying runs nothing touched for $1 through
// job_runs_inflight and stamps them; the run columns follow RETURNING.
const stuckRunsSQL = `
		WITH stuck AS (
			SELECT j.id FROM job_runs j
			WHERE j.id = ANY (ARRAY(SELECT id FROM job_runs_inflight))
			  AND j.status IN ('interrupted', 'retrying') AND j.cancel_requested_at IS NULL
			  AND j.updated_at < now() - $1::interval
			ORDER BY j.updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		UPDATE job_runs r SET updated_at = now()
		FROM stuck WHERE r.id = stuck.id
		RETURNING `

// StuckRuns returns interrupted and retrying runs nothing touched for olderThan, and stamps
// them so the next repair pass waits another olderThan. Such a run waits for a message the
// broker no longer has (lost with a broker's disk, dead-lettered after a database outage, or
// acknowledged by an older node that skipped it): the ticker publishes it again, and a copy
// that does arrive is harmless, the claim dedups it.
func (l *Ledger) StuckRuns(ctx context.Context, olderThan time.Duration, limit int) ([]Run, error) {
	// One an operator asked to cancel (its attempt recorded by a node of an earlier release)
	// ends cancelled instead: republished, it would be given up as failed, with an alert.
	rows, err := l.db.Query(ctx, `SELECT j.id FROM job_runs j
		WHERE j.id = ANY (ARRAY(SELECT id FROM job_runs_inflight))
		  AND j.status IN ('interrupted', 'retrying') AND j.cancel_requested_at IS NOT NULL
		  AND j.updated_at < now() - $1::interval
		LIMIT $2`, olderThan.String(), limit)
	if err != nil {
		return nil, fmt.Errorf("list stuck cancelled runs: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("list stuck cancelled runs: %w", err)
	}
	if err := l.endCancelled(ctx, ids, nil); err != nil {
		return nil, err
	}
	rows, err = l.db.Query(ctx, stuckRunsSQL+prefixed("r.", runColumns), olderThan.String(), limit)
	if err != nil {
		return nil, fmt.Errorf("list stuck runs: %w", err)
	}
	return collectRuns(rows)
}

// NoteRepublished counts one more republish of run id and returns the count so far. The
// ticker gives a run up (GiveUp) instead of publishing it again past its limit.
func (l *Ledger) NoteRepublished(ctx context.Context, id int64) (int, error) {
	var n int
	err := l.db.QueryRow(ctx, `UPDATE job_runs SET republished = republished + 1 WHERE id = $1 RETURNING republished`,
		id).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count republish of run %d: %w", id, err)
	}
	return n, nil
}

// GiveUp ends a run that is not running with a terminal status (failed, or rejected when its
// job kind no longer exists) and the reason, once: it reports false when the run had moved on
// meanwhile (a node claimed it, or another leader gave it up first).
func (l *Ledger) GiveUp(ctx context.Context, id int64, status Status, reason string) (bool, error) {
	if !status.Terminal() {
		return false, fmt.Errorf("give up run %d: %s is not a terminal status", id, status)
	}
	tag, err := l.db.Exec(ctx, `UPDATE job_runs SET status = $2, error = $3, finished_at = now(), updated_at = now()
		WHERE id = $1 AND status IN ('scheduled', 'retrying', 'interrupted', 'abandoned')`, id, string(status), reason)
	if err != nil {
		return false, fmt.Errorf("give up run %d: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// SkipFresh records env as skipped (overlap policy skip_if_running) only if the run never
// started: a run that already had an attempt (retrying, interrupted, abandoned) must run, not
// be acknowledged into a state nothing would ever pick up again. It reports whether it
// skipped, and otherwise the status found.
func (l *Ledger) SkipFresh(ctx context.Context, env job.Envelope, node string, why any) (bool, Status, error) {
	result, err := json.Marshal(why)
	if err != nil {
		return false, "", fmt.Errorf("encode skip reason: %w", err)
	}
	tag, err := l.db.Exec(ctx, `
		INSERT INTO job_runs (job, run_key, shard_index, shard_total, trigger, scheduled_at, params, requested_by,
			status, node, finished_at, result)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'skipped', $9, now(), $10)
		ON CONFLICT (job, run_key, shard_index) DO UPDATE SET status = 'skipped', node = EXCLUDED.node,
			finished_at = now(), result = EXCLUDED.result, updated_at = now()
		WHERE job_runs.status = 'scheduled' AND job_runs.attempt = 0`,
		env.Job, env.RunKey, env.Shard.Index, env.Shard.Total, string(env.Trigger), env.ScheduledAt,
		paramsOrEmpty(env.Params), env.RequestedBy, node, result)
	if err != nil {
		return false, "", fmt.Errorf("record skipped %s/%s: %w", env.Job, env.RunKey, err)
	}
	if tag.RowsAffected() == 1 {
		return true, StatusSkipped, nil
	}
	var st Status
	err = l.db.QueryRow(ctx, `SELECT status FROM job_runs WHERE job = $1 AND run_key = $2 AND shard_index = $3`,
		env.Job, env.RunKey, env.Shard.Index).Scan(&st)
	if err != nil {
		return false, "", fmt.Errorf("read run %s/%s: %w", env.Job, env.RunKey, err)
	}
	return false, st, nil
}
