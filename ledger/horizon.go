package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// PruneHorizon is the dedup horizon: the newest cutoff retention pruned runs with (the zero
// time when it never did). Every pruned run was created and scheduled before it, so for a
// message scheduled earlier the ledger can no longer say whether its run already ran.
func (l *Ledger) PruneHorizon(ctx context.Context) (time.Time, error) {
	var cutoff time.Time
	err := l.db.QueryRow(ctx, `SELECT cutoff FROM job_prune_horizon WHERE target = $1`, string(PruneRuns)).Scan(&cutoff)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("read the dedup horizon: %w", err)
	}
	return cutoff, nil
}

// endCancelledSQL ends runs between attempts that an operator asked to cancel. Their latest
// attempt moves to job_past_attempts with its own outcome first, as RequestCancel does.
const endCancelledSQL = `
	WITH prev AS (
		SELECT id, attempt, node, msg_id, started_at, finished_at, updated_at, status, error FROM job_runs
		WHERE id = ANY($1::bigint[]) AND cancel_requested_at IS NOT NULL
		  AND status IN ('scheduled', 'retrying', 'interrupted', 'abandoned')
		ORDER BY id FOR UPDATE),
	archived AS (
		INSERT INTO job_past_attempts (run_id, attempt, node, msg_id, started_at, finished_at, outcome, error)
		SELECT id, attempt, node, msg_id, started_at, coalesce(finished_at, updated_at), status, error
		FROM prev WHERE attempt > 0 AND started_at IS NOT NULL
		ON CONFLICT (run_id, attempt) DO NOTHING)
	UPDATE job_runs j SET status = 'cancelled', error = 'cancelled by ' || j.cancel_requested_by,
		finished_at = now(), updated_at = now()
	FROM prev WHERE j.id = prev.id
	RETURNING j.id`

// endCancelled ends the runs ids cancelled (those still between attempts with a cancel
// request) and marks the claims in out (nil: none) of the ones it ended as finished cancelled.
func (l *Ledger) endCancelled(ctx context.Context, ids []int64, out map[runKey]ClaimResult) error {
	if len(ids) == 0 {
		return nil
	}
	rows, err := l.db.Query(ctx, endCancelledSQL, ids)
	if err != nil {
		return fmt.Errorf("end cancelled runs: %w", err)
	}
	ended, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("end cancelled runs: %w", err)
	}
	done := make(map[int64]bool, len(ended))
	for _, id := range ended {
		done[id] = true
	}
	for k, r := range out {
		if done[r.Claim.RunID] {
			r.Claim.Status = StatusCancelled
			out[k] = r
		}
	}
	return nil
}
