package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
)

// insertRun writes a job_runs row directly, created at the given time, with one attempt.
func insertRun(t testing.TB, l *Ledger, jobName, key string, st Status, created time.Time) int64 {
	t.Helper()
	var id int64
	require.NoError(t, l.db.QueryRow(context.Background(), `INSERT INTO job_runs
		(job, run_key, trigger, scheduled_at, status, created_at) VALUES ($1, $2, 'manual', $3, $4, $3) RETURNING id`,
		jobName, key, created, string(st)).Scan(&id))
	return id
}

func TestNodesLiveGoneStopped(t *testing.T) {
	t.Parallel()
	s := testenv.NewSchema(t)
	ctx := context.Background()
	require.NoError(t, Migrate(ctx, s.Pool))
	l := New(s.Pool)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	started := now.Add(-time.Hour)
	require.NoError(t, l.BeatNode(ctx, NodeBeat{Node: "a", Version: "v1", StartedAt: started, InFlight: 3, Leader: true,
		Queues: []string{"broker-a/jobs/0", "broker-a/jobs/1"}}, now.Add(-5*time.Second)))
	require.NoError(t, l.BeatNode(ctx, NodeBeat{Node: "b", Version: "v1", StartedAt: started, InFlight: 2, Leader: true}, now.Add(-2*time.Minute)))
	require.NoError(t, l.BeatNode(ctx, NodeBeat{Node: "c", Version: "v0", StartedAt: started}, now.Add(-time.Minute)))
	require.NoError(t, l.StopNode(ctx, "c", now.Add(-time.Minute)))
	require.NoError(t, l.BeatNode(ctx, NodeBeat{Node: "old", StartedAt: started}, now.Add(-48*time.Hour)))

	nodes, err := l.Nodes(ctx, now, 30*time.Second, 24*time.Hour)
	require.NoError(t, err)
	require.Len(t, nodes, 3, "a node not seen within keep is not listed")
	require.Equal(t, "a", nodes[0].Node)
	require.Equal(t, NodeLive, nodes[0].State)
	require.Equal(t, 3, nodes[0].InFlight)
	require.True(t, nodes[0].Leader)
	require.Equal(t, []string{"broker-a/jobs/0", "broker-a/jobs/1"}, nodes[0].Queues)
	require.Equal(t, "b", nodes[1].Node)
	require.Equal(t, NodeGone, nodes[1].State)
	require.False(t, nodes[1].Leader, "a gone node's leadership is not believed")
	require.Zero(t, nodes[1].InFlight)
	require.Equal(t, NodeStopped, nodes[2].State)

	// A restarted node is live again and no longer marked stopped.
	require.NoError(t, l.BeatNode(ctx, NodeBeat{Node: "c", Version: "v2", StartedAt: now}, now))
	nodes, err = l.Nodes(ctx, now, 30*time.Second, 24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, "c", nodes[1].Node)
	require.Equal(t, NodeLive, nodes[1].State)
	require.Equal(t, "v2", nodes[1].Version)
}

func TestRunReportCountsPerDayInZone(t *testing.T) {
	t.Parallel()
	s := testenv.NewSchema(t)
	ctx := context.Background()
	require.NoError(t, Migrate(ctx, s.Pool))
	l := New(s.Pool)
	loc, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, loc)
	day := func(d, h int) time.Time { return time.Date(2026, 12, d, h, 0, 0, 0, loc) }
	insertRun(t, l, "a", "1", StatusSucceeded, day(3, 1))
	insertRun(t, l, "a", "2", StatusFailed, day(3, 2))
	insertRun(t, l, "a", "3", StatusSkipped, day(2, 23))
	insertRun(t, l, "b", "1", StatusSucceeded, day(2, 0)) // 16:00 UTC on Dec 1: Dec 2 in Shanghai
	insertRun(t, l, "b", "2", StatusRunning, day(1, 12))
	insertRun(t, l, "b", "old", StatusSucceeded, day(1, 12).AddDate(0, 0, -40))

	rows, err := l.RunReport(ctx, now, 30, loc)
	require.NoError(t, err)
	days := ReportDays(now, 30, loc)
	require.Len(t, days, 30)
	require.Equal(t, "2026-12-03", days[29])
	all := Totals(rows, days, "")
	require.Equal(t, ReportDay{Day: "2026-12-03", Succeeded: 1, Failed: 1}, all[29])
	require.Equal(t, ReportDay{Day: "2026-12-02", Succeeded: 1, Other: 1}, all[28])
	require.Equal(t, ReportDay{Day: "2026-12-01", Other: 1}, all[27])
	total := 0
	for _, d := range all {
		total += d.Succeeded + d.Failed + d.Other
	}
	require.Equal(t, 5, total, "the run 40 days old is outside the window")
	b := Totals(rows, days, "b")
	require.Equal(t, ReportDay{Day: "2026-12-02", Job: "b", Succeeded: 1}, b[28])
}

func TestPruneBatchKeepsLiveAndRecentRows(t *testing.T) {
	t.Parallel()
	s := testenv.NewSchema(t)
	ctx := context.Background()
	require.NoError(t, Migrate(ctx, s.Pool))
	l := New(s.Pool)
	now := time.Now()
	old := now.AddDate(0, 0, -40)
	var oldIDs []int64
	for i := range 7 {
		oldIDs = append(oldIDs, insertRun(t, l, "a", "old"+string(rune('a'+i)), StatusSucceeded, old))
	}
	stuck := insertRun(t, l, "a", "stuck", StatusRunning, old)
	recent := insertRun(t, l, "a", "new", StatusFailed, now.Add(-time.Hour))
	_, err := s.Pool.Exec(ctx, `INSERT INTO gc_log (file_id, file_hash, bucket, object_path, deleted_at, run_id)
		VALUES (1, 'h', 'b', 'p', $1, $2), (2, 'h', 'b', 'p', $3, $2)`, now.AddDate(0, 0, -200), oldIDs[0], now.AddDate(0, 0, -10))
	require.NoError(t, err)

	cutoff := now.AddDate(0, 0, -30)
	n, err := l.PruneBatch(ctx, PruneRuns, cutoff, 5)
	require.NoError(t, err)
	require.EqualValues(t, 5, n)
	n, err = l.PruneBatch(ctx, PruneRuns, cutoff, 5)
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "fewer than the limit: done")
	var runs, attempts int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM job_runs`).Scan(&runs))
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM job_attempts`).Scan(&attempts))
	require.Equal(t, 2, runs)
	require.LessOrEqual(t, attempts, 2, "attempts (part of the run row since 00050) go with their runs")
	_, err = l.GetRun(ctx, stuck)
	require.NoError(t, err, "a run still under way is never pruned")
	_, err = l.GetRun(ctx, recent)
	require.NoError(t, err)

	// gc_log keeps its record of a pruned run (run_id NULL) until its own, longer age.
	var nullRun int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM gc_log WHERE run_id IS NULL`).Scan(&nullRun))
	require.Equal(t, 2, nullRun, "both gc_log rows pointed at the pruned run and stay")
	n, err = l.PruneBatch(ctx, PruneGCLog, now.AddDate(0, 0, -180), 100)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	_, err = l.PruneBatch(ctx, "users", cutoff, 5)
	require.ErrorContains(t, err, "not a retention target")
}
