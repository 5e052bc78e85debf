package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// PruneTarget names what a retention batch deletes.
type PruneTarget string

// What the retention job prunes. Runs take their attempts (and any per-run rows declared ON
// DELETE CASCADE, such as run logs) with them; gc_log rows that pointed at a pruned run keep
// their record with run_id set to NULL.
const (
	PruneRuns   PruneTarget = "runs"   // finished job_runs rows (and their attempts), by created_at and scheduled_at
	PruneAlerts PruneTarget = "alerts" // job_alerts rows last seen before the cutoff
	PruneGCLog  PruneTarget = "gc_log" // gc_log rows, by deleted_at
	PruneNodes  PruneTarget = "nodes"  // job_nodes rows whose last heartbeat is before the cutoff
)

// pruneSQL deletes at most $2 rows older than $1. Each statement picks its victims through an
// index on the age column and SKIP LOCKED, so it never waits on a row a node is working on and
// holds its row locks only for one small batch.
var pruneSQL = map[PruneTarget]string{
	// Only terminal statuses: a run still scheduled, running or retrying is never pruned, however
	// old (the reaper and the operator deal with those).
	//
	// Runs scheduled after the cutoff stay (the ticker records occurrences ahead of their time),
	// so that every pruned run was scheduled before the cutoff, which becomes the dedup horizon
	// (job_prune_horizon): a message without a row scheduled before it is refused, not run.
	// The newest pruned occurrence of each scheduled job is kept as its cursor (job_cursors).
	PruneRuns: `WITH pruned AS (
			DELETE FROM job_runs WHERE id IN (
				SELECT id FROM job_runs WHERE created_at < $1 AND scheduled_at < $1
				  AND status IN ('succeeded', 'failed', 'rejected', 'skipped', 'cancelled')
				ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
			RETURNING job, trigger, scheduled_at),
		cursors AS (
			INSERT INTO job_cursors AS c (job, occurrence)
			SELECT job, max(scheduled_at) FROM pruned WHERE trigger = 'schedule' GROUP BY job
			ON CONFLICT (job) DO UPDATE SET occurrence = greatest(c.occurrence, EXCLUDED.occurrence), updated_at = now())
		SELECT count(*) FROM pruned`,
	PruneAlerts: `DELETE FROM job_alerts WHERE (dedupe_key, channel) IN (
		SELECT dedupe_key, channel FROM job_alerts WHERE last_seen_at < $1
		ORDER BY last_seen_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
	PruneGCLog: `DELETE FROM gc_log WHERE id IN (
		SELECT id FROM gc_log WHERE deleted_at < $1 ORDER BY deleted_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
	PruneNodes: `DELETE FROM job_nodes WHERE node IN (
		SELECT node FROM job_nodes WHERE heartbeat_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`,
}

// The dedup horizon is raised in the pruning's transaction before its delete, and a claim of
// a new run reads it FOR SHARE (insertRunsSQL): a claim that meets the raise waits for the
// pruning to commit and reads the new horizon; one that read the horizon first holds the raise
// (and so the delete) until it commits, while the run's row is still there to conflict with.
// Either way a late copy of a pruned run's message is never inserted as a new run. The row is
// made first in a statement of its own, committed, so even the first pruning has one to lock.
const (
	seedHorizonSQL  = `INSERT INTO job_prune_horizon (target, cutoff) VALUES ('runs', $1) ON CONFLICT (target) DO NOTHING`
	raiseHorizonSQL = `INSERT INTO job_prune_horizon AS h (target, cutoff) VALUES ('runs', $1)
		ON CONFLICT (target) DO UPDATE SET cutoff = greatest(h.cutoff, EXCLUDED.cutoff), updated_at = now()`
)

// pruneRuns prunes at most limit finished runs older than cutoff in tx, after raising the
// dedup horizon to cutoff in it.
func pruneRuns(ctx context.Context, tx pgx.Tx, cutoff time.Time, limit int) (int64, error) {
	if _, err := tx.Exec(ctx, raiseHorizonSQL, cutoff); err != nil {
		return 0, fmt.Errorf("raise the dedup horizon: %w", err)
	}
	var n int64
	if err := tx.QueryRow(ctx, pruneSQL[PruneRuns], cutoff, limit).Scan(&n); err != nil {
		return 0, err
	}
	return n, nil
}

// PruneTargets lists every target in the order the retention job visits them.
func PruneTargets() []PruneTarget {
	return []PruneTarget{PruneRuns, PruneAlerts, PruneGCLog, PruneNodes}
}

// PruneBatch deletes at most limit rows of target older than cutoff in one short transaction
// and returns how many it deleted (fewer than limit: nothing older is left).
func (l *Ledger) PruneBatch(ctx context.Context, target PruneTarget, cutoff time.Time, limit int) (int64, error) {
	q, ok := pruneSQL[target]
	if !ok {
		return 0, fmt.Errorf("prune %q: not a retention target", target)
	}
	if target == PruneRuns {
		var n int64
		_, err := l.db.Exec(ctx, seedHorizonSQL, cutoff)
		if err == nil {
			err = pgx.BeginFunc(ctx, l.db, func(tx pgx.Tx) (err error) {
				n, err = pruneRuns(ctx, tx, cutoff, limit)
				return err
			})
		}
		if err != nil {
			return 0, fmt.Errorf("prune %s older than %s: %w", target, cutoff.UTC().Format(time.RFC3339), err)
		}
		return n, nil
	}
	tag, err := l.db.Exec(ctx, q, cutoff, limit)
	if err != nil {
		return 0, fmt.Errorf("prune %s older than %s: %w", target, cutoff.UTC().Format(time.RFC3339), err)
	}
	return tag.RowsAffected(), nil
}
