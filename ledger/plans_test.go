package ledger

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
)

// TestHotStatementsFindRunsByKey checks the plans of the statements every run goes through
// (claim, take-over, outcome, heartbeat): each must reach the rows it names through the
// primary key or the run key, never by reading job_runs or an index on its status. Both wrong
// plans happened: a generic plan of the claim cached while the table was nearly empty read the
// whole table at every claim, and the outcome, matching status through the live-run index of
// earlier releases, read every live run and every entry of a run finished since the last
// vacuum. Either made a loaded node's ledger several times slower, growing with the table.
// The repair pass's statements start from job_runs_inflight and reach job_runs by primary key.
func TestHotStatementsFindRunsByKey(t *testing.T) {
	testenv.Integration(t)
	ctx := context.Background()
	s := testenv.NewSchema(t)
	require.NoError(t, Migrate(ctx, s.Pool))
	conn, err := s.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()

	const batch = 50
	claimArgs := func(prefix string) []any {
		jobs, keys, triggers, params, by, nodes, msgs := make([]string, batch), make([]string, batch), make([]string, batch),
			make([]string, batch), make([]string, batch), make([]string, batch), make([]string, batch)
		shards, totals, at := make([]int32, batch), make([]int32, batch), make([]time.Time, batch)
		for i := range batch {
			jobs[i], keys[i], triggers[i], params[i], nodes[i], msgs[i] = "noop", fmt.Sprintf("%s%d", prefix, i), "manual", "{}", "a", "m"
			totals[i], at[i] = 1, time.Now()
		}
		return []any{jobs, keys, shards, totals, triggers, at, params, by, nodes, msgs}
	}
	plan := func(t *testing.T, sql string, args ...any) string {
		t.Helper()
		rows, err := conn.Query(ctx, "EXPLAIN "+sql, append([]any{pgx.QueryExecModeExec}, args...)...)
		require.NoError(t, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return strings.Join(lines, "\n")
	}
	byKeyOnly := func(t *testing.T, p string) {
		t.Helper()
		require.NotContains(t, p, "Seq Scan on job_runs ", p)
		require.NotContains(t, p, "job_runs_live", p)
	}

	t.Run("claim of new runs, generic plan made on an empty table", func(t *testing.T) {
		// What a node's pooled connection caches after its first claims on a new ledger.
		_, err := conn.Exec(ctx, "PREPARE claim_new AS "+insertRunsSQL)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan")
		require.NoError(t, err)
		defer func() { _, _ = conn.Exec(ctx, "RESET plan_cache_mode; DEALLOCATE claim_new") }()
		rows, err := conn.Query(ctx, `EXPLAIN EXECUTE claim_new('{noop}', '{new:1}', '{0}', '{1}', '{manual}',
			ARRAY[now()], '{"{}"}', '{""}', '{a}', '{m}')`, pgx.QueryExecModeSimpleProtocol)
		require.NoError(t, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		p := strings.Join(lines, "\n")
		byKeyOnly(t, p)
		require.NotContains(t, p, "Join", "a claim of new runs joins nothing: the unique index checks conflicts\n%s", p)
	})

	// A busy ledger since its last analyze: many finished runs, then a thousand running.
	_, err = conn.Exec(ctx, `INSERT INTO job_runs (job, run_key, trigger, scheduled_at, status, attempt, node, started_at, finished_at)
		SELECT 'noop', 'done:' || i, 'manual', now(), 'succeeded', 1, 'a', now(), now() FROM generate_series(1, 20000) i`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `ANALYZE job_runs`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO job_runs (job, run_key, trigger, scheduled_at, status, attempt, node, started_at, heartbeat_at)
		SELECT 'noop', 'live:' || i, 'manual', now(), 'running', 1, 'a', now(), now() FROM generate_series(0, 999) i`)
	require.NoError(t, err)
	rows, err := conn.Query(ctx, `SELECT id FROM job_runs WHERE run_key LIKE 'live:%' ORDER BY id LIMIT $1`, batch)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	attempts, statuses, results, errs := make([]int32, batch), make([]string, batch), make([]*string, batch), make([]string, batch)
	for i := range batch {
		attempts[i], statuses[i] = 1, "succeeded"
	}

	t.Run("take-over", func(t *testing.T) {
		a := claimArgs("live:")
		byKeyOnly(t, plan(t, takeOverSQL, a[0], a[1], a[2], a[8], a[9], "30s"))
	})
	t.Run("outcome", func(t *testing.T) {
		byKeyOnly(t, plan(t, finishSQL, ids, attempts, statuses, results, errs))
	})
	t.Run("heartbeat", func(t *testing.T) {
		byKeyOnly(t, plan(t, heartbeatSQL, ids, attempts, "a"))
	})
	t.Run("repair pass", func(t *testing.T) {
		for name, sql := range map[string]string{"reaper": reapStaleSQL + "r.id", "stuck": stuckRunsSQL + "r.id",
			"overdue": overdueSQL + "r.id", "unpublished": "SELECT j.id" + unpublishedSQL} {
			p := plan(t, sql, "30s", 100)
			byKeyOnly(t, p)
			require.Contains(t, p, "job_runs_pkey", "%s: job_runs reached by primary key\n%s", name, p)
		}
	})
}
