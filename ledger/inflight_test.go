package ledger_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
)

// writePrevious writes runs with plain statements, as a node of the previous release (or a
// database before migration 00080) does: every key gets a row of prefix+key. Only the
// triggers on job_runs can tell job_runs_inflight about them.
func writePrevious(t *testing.T, s *testenv.Schema, prefix string) {
	t.Helper()
	ctx := context.Background()
	_, err := s.Pool.Exec(ctx, `
		INSERT INTO job_runs (job, run_key, trigger, scheduled_at, status, attempt, node, msg_id, msg_broker,
			started_at, heartbeat_at, created_at, updated_at)
		SELECT 'old', $1 || k, 'schedule', now() - a, st, att, 'gone-node', m, b, now() - a, now() - hb, now() - a, now() - a
		FROM (VALUES
			('stale',     'running',     1, 'm', '',   interval '1 hour', interval '1 hour'),
			('fresh',     'running',     1, 'm', '',   interval '1 hour', interval '0'),
			('stuck',     'interrupted', 1, 'm', '',   interval '1 hour', interval '1 hour'),
			('retrying',  'retrying',    1, 'm', '',   interval '1 hour', interval '1 hour'),
			('abandoned', 'abandoned',   1, 'm', '',   interval '1 hour', interval '1 hour'),
			('overdue',   'scheduled',   0, 'm', 'b1', interval '1 hour', interval '1 hour'),
			('unpub',     'scheduled',   0, '',  '',   interval '1 hour', interval '1 hour'),
			('finished',  'running',     1, 'm', '',   interval '1 hour', interval '1 hour'),
			('taken',     'scheduled',   0, 'm', 'b2', interval '1 hour', interval '1 hour'),
			('done',      'succeeded',   1, 'm', '',   interval '1 hour', interval '1 hour'),
			('deleted',   'running',     1, 'm', '',   interval '1 hour', interval '1 hour')
		) AS v(k, st, att, m, b, a, hb)`, prefix)
	require.NoError(t, err)
	// Finished, taken over and deleted by the previous release's own statements.
	_, err = s.Pool.Exec(ctx, `UPDATE job_runs SET status = 'succeeded', finished_at = now(), updated_at = now()
		WHERE run_key = $1 || 'finished'`, prefix)
	require.NoError(t, err)
	_, err = s.Pool.Exec(ctx, `UPDATE job_runs SET status = 'running', attempt = 1, heartbeat_at = now(), updated_at = now()
		WHERE run_key = $1 || 'taken'`, prefix)
	require.NoError(t, err)
	_, err = s.Pool.Exec(ctx, `DELETE FROM job_runs WHERE run_key = $1 || 'deleted'`, prefix)
	require.NoError(t, err)
}

func keysOf(runs []ledger.Run) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.RunKey
	}
	slices.Sort(out)
	return out
}

// The repair pass, the stale reaper, the overdue, unpublished and broker checks, the backlog
// and the overlap check find through job_runs_inflight exactly the runs they found by reading
// job_runs: runs that existed before the migration (filled in by it) and runs a node of the
// previous release inserts, claims, finishes and deletes with its own plain statements (kept
// by the triggers).
func TestRepairFindsRunsOfBothReleasesThroughInflight(t *testing.T) {
	ctx := context.Background()
	s := testenv.NewSchema(t)
	require.NoError(t, ledger.MigrateTo(ctx, s.Pool, 75))
	writePrevious(t, s, "before:")
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	writePrevious(t, s, "after:")
	l := ledger.New(s.Pool)

	require.Len(t, requireInflightExact(t, s), 2*8)

	both := func(keys ...string) []string {
		var out []string
		for _, p := range []string{"after:", "before:"} {
			for _, k := range keys {
				out = append(out, p+k)
			}
		}
		slices.Sort(out)
		return out
	}
	brokers, err := l.WaitingBrokers(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"b1"}, brokers, "b2's run was taken")
	backlog, err := l.Backlog(ctx)
	require.NoError(t, err)
	require.Len(t, backlog, 1)
	require.Equal(t, 4, backlog[0].Due, "overdue and unpub, twice")
	require.Equal(t, 2, backlog[0].Retrying)
	other, err := l.OtherRunning(ctx, "old", "after:stale", time.Minute)
	require.NoError(t, err)
	require.True(t, other, "fresh and taken are running")

	unpublished, err := l.Unpublished(ctx, time.Minute, 100)
	require.NoError(t, err)
	require.Equal(t, both("unpub"), keysOf(unpublished))
	overdue, err := l.TouchOverdue(ctx, time.Minute, 100)
	require.NoError(t, err)
	require.Equal(t, both("overdue"), keysOf(overdue))
	stuck, err := l.StuckRuns(ctx, time.Minute, 100)
	require.NoError(t, err)
	require.Equal(t, both("retrying", "stuck"), keysOf(stuck))
	reaped, err := l.ReapStale(ctx, time.Minute, 100)
	require.NoError(t, err)
	require.Equal(t, both("abandoned", "stale"), keysOf(reaped))
	moved, err := l.ForgetBroker(ctx, "b1")
	require.NoError(t, err)
	require.Equal(t, int64(2), moved)
	requireInflightExact(t, s)
}

// requireInflightExact checks that job_runs_inflight holds exactly the runs of job_runs not
// finished, and returns their ids.
func requireInflightExact(t *testing.T, s *testenv.Schema) []int64 {
	t.Helper()
	ctx := context.Background()
	rows, err := s.Pool.Query(ctx, `SELECT id FROM job_runs
		WHERE status NOT IN ('succeeded', 'failed', 'rejected', 'skipped', 'cancelled') ORDER BY id`)
	require.NoError(t, err)
	live, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	rows, err = s.Pool.Query(ctx, `SELECT id FROM job_runs_inflight ORDER BY id`)
	require.NoError(t, err)
	inflight, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Equal(t, live, inflight, "job_runs_inflight holds the runs not finished")
	return inflight
}
