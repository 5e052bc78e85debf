package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatplat/job-service/job"
)

// ClaimOutcome says what the consumer should do with a message after trying to claim it.
type ClaimOutcome int

// Claim outcomes.
const (
	// Claimed: this node holds the run and must run the handler.
	Claimed ClaimOutcome = iota
	// AlreadyDone: the run reached a terminal state earlier; acknowledge and skip.
	AlreadyDone
	// HeldElsewhere: another node is running it and heartbeating; try again later, in case
	// that node dies.
	HeldElsewhere
)

// Claim is the run a node holds after a successful claim.
type Claim struct {
	Outcome ClaimOutcome
	RunID   int64
	Attempt int
	Status  Status // the status found, for AlreadyDone and HeldElsewhere
}

// ClaimRun takes the run named by env for node. It inserts the row, or takes it over when it
// is scheduled, retrying, interrupted, abandoned, or running with a heartbeat older than
// staleAfter (its node vanished). Succeeded, failed, rejected and skipped runs are never run
// again, which makes redelivery and double publishing harmless.
func (l *Ledger) ClaimRun(ctx context.Context, env job.Envelope, node, msgID string, staleAfter time.Duration) (Claim, error) {
	// One statement, so one round trip and one implicit transaction: the run row is taken,
	// a previous attempt still marked running (its node vanished) is closed as abandoned,
	// and the new attempt is recorded. The data-modifying CTEs see the same snapshot, so
	// the UPDATE touches only attempts that existed before and never the one inserted here.
	var c Claim
	err := l.db.QueryRow(ctx, `
		WITH claimed AS (
			INSERT INTO job_runs (job, run_key, shard_index, shard_total, trigger, scheduled_at, params, requested_by,
				status, attempt, node, msg_id, started_at, heartbeat_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'running', 1, $9, $10, now(), now())
			ON CONFLICT (job, run_key, shard_index) DO UPDATE SET
				status = 'running', attempt = job_runs.attempt + 1, node = EXCLUDED.node,
				msg_id = CASE WHEN EXCLUDED.msg_id <> '' THEN EXCLUDED.msg_id ELSE job_runs.msg_id END,
				started_at = now(), heartbeat_at = now(), finished_at = NULL, error = '', updated_at = now()
			WHERE job_runs.status IN ('scheduled', 'retrying', 'interrupted', 'abandoned')
			   OR (job_runs.status = 'running' AND job_runs.heartbeat_at < now() - $11::interval)
			RETURNING id, attempt),
		abandoned AS (
			UPDATE job_attempts a SET outcome = 'abandoned', finished_at = now()
			FROM claimed WHERE a.run_id = claimed.id AND a.outcome = 'running'),
		recorded AS (
			INSERT INTO job_attempts (run_id, attempt, node, msg_id, started_at)
			SELECT id, attempt, $9, $10, now() FROM claimed)
		SELECT id, attempt FROM claimed`,
		env.Job, env.RunKey, env.Shard.Index, env.Shard.Total, string(env.Trigger), env.ScheduledAt,
		paramsOrEmpty(env.Params), env.RequestedBy, node, msgID, staleAfter.String()).Scan(&c.RunID, &c.Attempt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// Not taken: find out why.
		var status Status
		var id int64
		err = l.db.QueryRow(ctx, `SELECT id, status FROM job_runs WHERE job = $1 AND run_key = $2 AND shard_index = $3`,
			env.Job, env.RunKey, env.Shard.Index).Scan(&id, &status)
		if err != nil {
			return Claim{}, fmt.Errorf("claim %s/%s: read existing run: %w", env.Job, env.RunKey, err)
		}
		c = Claim{RunID: id, Status: status, Outcome: AlreadyDone}
		if status == StatusRunning {
			c.Outcome = HeldElsewhere
		}
		return c, nil
	case err != nil:
		return Claim{}, fmt.Errorf("claim %s/%s: %w", env.Job, env.RunKey, err)
	}
	c.Outcome = Claimed
	c.Status = StatusRunning
	return c, nil
}

// Outcome is how an attempt ended.
type Outcome struct {
	Status Status // succeeded, failed, retrying, interrupted or skipped
	Result any    // marshalled into job_runs.result; nil keeps it NULL
	Err    error
}

// ErrLostClaim is returned by Finish when the run was taken over by another node (this node
// was presumed dead): its outcome must not overwrite the newer attempt's.
var ErrLostClaim = errors.New("run was taken over by another attempt")

// Finish records the outcome of the attempt this node claimed. The attempt number fences it:
// a node that was presumed dead and comes back cannot overwrite a newer attempt.
func (l *Ledger) Finish(ctx context.Context, c Claim, o Outcome) error {
	var result []byte
	if o.Result != nil {
		var err error
		if result, err = json.Marshal(o.Result); err != nil {
			return fmt.Errorf("finish run %d: encode result: %w", c.RunID, err)
		}
	}
	errText := ""
	if o.Err != nil {
		errText = o.Err.Error()
	}
	// One statement (one round trip, atomic): the attempt number fences the run row, and
	// the attempt row is updated only when the run row was.
	var updated int
	err := l.db.QueryRow(ctx, `
		WITH run AS (
			UPDATE job_runs SET status = $3, result = $4, error = $5, updated_at = now(),
				finished_at = CASE WHEN $3 IN ('succeeded', 'failed', 'skipped') THEN now() ELSE NULL END
			WHERE id = $1 AND attempt = $2 AND status = 'running'
			RETURNING id),
		att AS (
			UPDATE job_attempts SET outcome = $3, error = $5, finished_at = now()
			WHERE run_id IN (SELECT id FROM run) AND attempt = $2)
		SELECT count(*) FROM run`,
		c.RunID, c.Attempt, string(o.Status), result, errText).Scan(&updated)
	if err != nil {
		return fmt.Errorf("finish run %d: %w", c.RunID, err)
	}
	if updated == 0 {
		return fmt.Errorf("finish run %d attempt %d: %w", c.RunID, c.Attempt, ErrLostClaim)
	}
	return nil
}

// Heartbeat refreshes the heartbeat of the runs this node holds. It returns the ids it could
// not refresh: those were taken over, and their handlers should stop.
func (l *Ledger) Heartbeat(ctx context.Context, node string, claims []Claim) (lost []int64, err error) {
	if len(claims) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(claims))
	attempts := make([]int32, len(claims))
	for i, c := range claims {
		ids[i], attempts[i] = c.RunID, int32(c.Attempt)
	}
	rows, err := l.db.Query(ctx, `
		UPDATE job_runs r SET heartbeat_at = now()
		FROM unnest($1::bigint[], $2::int[]) AS held(id, attempt)
		WHERE r.id = held.id AND r.attempt = held.attempt AND r.status = 'running' AND r.node = $3
		RETURNING r.id`, ids, attempts, node)
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	kept, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	alive := make(map[int64]bool, len(kept))
	for _, id := range kept {
		alive[id] = true
	}
	for _, id := range ids {
		if !alive[id] {
			lost = append(lost, id)
		}
	}
	return lost, nil
}

// OtherRunning reports whether another run of jobName (not runKey) is running with a fresh
// heartbeat: the overlap policy skip_if_running uses it.
func (l *Ledger) OtherRunning(ctx context.Context, jobName, runKey string, staleAfter time.Duration) (bool, error) {
	var n int
	err := l.db.QueryRow(ctx, `SELECT count(*) FROM job_runs
		WHERE job = $1 AND run_key <> $2 AND status = 'running' AND heartbeat_at >= now() - $3::interval`,
		jobName, runKey, staleAfter.String()).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("check running %s: %w", jobName, err)
	}
	return n > 0, nil
}

// ReapStale marks runs whose node stopped heartbeating as abandoned and returns them, so the
// ticker can publish them again.
func (l *Ledger) ReapStale(ctx context.Context, staleAfter time.Duration, limit int) ([]Run, error) {
	rows, err := l.db.Query(ctx, `
		WITH stale AS (
			SELECT id FROM job_runs
			WHERE (status = 'running' AND heartbeat_at < now() - $1::interval)
			   -- an abandoned run nobody claimed since it was republished: publish it again
			   OR (status = 'abandoned' AND updated_at < now() - $1::interval)
			ORDER BY heartbeat_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		UPDATE job_runs r SET status = 'abandoned', updated_at = now(),
			error = 'node ' || r.node || ' stopped heartbeating'
		FROM stale WHERE r.id = stale.id
		RETURNING `+prefixed("r.", runColumns), staleAfter.String(), limit)
	if err != nil {
		return nil, fmt.Errorf("reap stale runs: %w", err)
	}
	reaped, err := collectRuns(rows)
	if err != nil {
		return nil, fmt.Errorf("reap stale runs: %w", err)
	}
	for _, r := range reaped {
		if _, err := l.db.Exec(ctx, `UPDATE job_attempts SET outcome = 'abandoned', finished_at = now()
			WHERE run_id = $1 AND attempt = $2 AND outcome = 'running'`, r.ID, r.Attempt); err != nil {
			return reaped, fmt.Errorf("reap stale run %d: attempt row: %w", r.ID, err)
		}
	}
	return reaped, nil
}
