package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
)

// reportsConfig writes a jobctl config for the report jobs on a fresh schema and topic (the
// chat platform's tables created, empty) and returns its path and the schema.
func reportsConfig(t *testing.T) (string, *testenv.Schema) {
	t.Helper()
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	m := testenv.NewMQ(t, 4)
	raw := fmt.Sprintf(`
postgres: {dsn: %q}
rocketmq: {name_servers: [%q], topic: %s, consumer_group: %s, producer_group: %s}
ticker: {enabled: false}
jobs:
  daily_stats: {schedule: "0 0 1 * * *", max_attempts: 2}
`, s.DSN, m.Config.NameServers[0], m.Config.Topic, m.Config.ConsumerGroup, m.Config.ProducerGroup)
	cfgPath := filepath.Join(t.TempDir(), "jobctl.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(raw), 0o600))
	return cfgPath, s
}

func startNode(t *testing.T, cfgPath string) {
	t.Helper()
	cfg, err := app.LoadConfig(cfgPath, nil)
	require.NoError(t, err)
	node := &app.Node{Cfg: cfg, Log: testenv.Logger(t), Instance: "n-" + testenv.Suffix()}
	require.NoError(t, node.Start(context.Background()))
	t.Cleanup(func() { _ = node.Stop(context.Background()) })
}

// A retry of the failed report of day D, asked for days later, reports day D: the retry keeps
// the period its original stood for instead of deriving one from the moment it is retried.
func TestRetryOfFailedReportWritesItsDay(t *testing.T) {
	cfgPath, s := reportsConfig(t)
	startNode(t, cfgPath)
	ctx := context.Background()
	now := time.Now().UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -4)
	fire := day.AddDate(0, 0, 1).Add(time.Hour) // the nightly 01:00 fire that reports day
	var id int64
	require.NoError(t, s.Pool.QueryRow(ctx, `INSERT INTO job_runs (job, run_key, trigger, scheduled_at, status, attempt,
		node, started_at, finished_at, error) VALUES ('daily_stats', $1, 'schedule', $2, 'failed', 2, 'gone', $2, $2,
		'source down') RETURNING id`, "sched:daily_stats@"+fire.Format(time.RFC3339), fire).Scan(&id))

	out, err := jobctl(t, cfgPath, "--json", "retry", fmt.Sprint(id), "--wait")
	require.NoError(t, err, out)
	var runs []ledger.Run
	require.NoError(t, json.Unmarshal([]byte(out), &runs), out)
	require.Len(t, runs, 1)
	require.Equal(t, ledger.StatusSucceeded, runs[0].Status)
	var res handlers.DailyStatsResult
	require.NoError(t, json.Unmarshal(runs[0].Result, &res))
	require.Equal(t, day.Format(time.DateOnly), res.Date, "the retry reports the day its original stood for")
	var days []string
	rows, err := s.Pool.Query(ctx, `SELECT stat_date::text FROM daily_stats ORDER BY stat_date`)
	require.NoError(t, err)
	for rows.Next() {
		var d string
		require.NoError(t, rows.Scan(&d))
		days = append(days, d)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{day.Format(time.DateOnly)}, days)
}

// A forced run has its ledger row as soon as jobctl returns, before any node takes its message:
// a message that is lost or dead-letters before a claim leaves a run that says so, never
// nothing. No node runs here, so nothing but jobctl can have written the row.
func TestForcedRunIsRecordedBeforeAnyClaim(t *testing.T) {
	cfgPath, s := reportsConfig(t)
	ctx := context.Background()
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	out, err := jobctl(t, cfgPath, "--json", "run", "daily_stats")
	require.NoError(t, err, out)
	var forced struct {
		RunKey string `json:"run_key"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &forced), out)
	var status, msgID, date string
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT status, msg_id, coalesce(params->>'date', '') FROM job_runs
		WHERE job = 'daily_stats' AND run_key = $1`, forced.RunKey).Scan(&status, &msgID, &date),
		"the forced run %s has no row", forced.RunKey)
	require.Equal(t, "scheduled", status)
	require.NotEmpty(t, msgID, "the row names the message it was published as")
	require.Equal(t, time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly), date,
		"a forced run without a date stands for the day it was asked for reports")
}

// A backfill of November writes thirty report rows, each for its own day, and asked for again
// publishes nothing; its runs are listed by backfill id.
func TestBackfillDailyStatsNovember(t *testing.T) {
	cfgPath, s := reportsConfig(t)
	startNode(t, cfgPath)
	ctx := context.Background()
	out, err := jobctl(t, cfgPath, "--json", "backfill", "daily_stats", "--from", "2026-11-01", "--to", "2026-11-30",
		"--wait")
	require.NoError(t, err, out)
	var prog ledger.BackfillProgress
	require.NoError(t, json.Unmarshal([]byte(out), &prog), out)
	require.Equal(t, 30, prog.Total)
	require.Equal(t, 30, prog.Published)
	if prog.Succeeded != 30 {
		bad, _ := jobctl(t, cfgPath, "runs", "--backfill", fmt.Sprint(prog.Backfill.ID))
		t.Fatalf("%d of 30 succeeded:\n%s", prog.Succeeded, bad)
	}

	// Each run wrote the day it stands for, and only that day.
	rows, err := s.Pool.Query(ctx, `SELECT r.params->>'date', r.logical_start, r.result->>'date', d.stat_date::text
		FROM job_runs r LEFT JOIN daily_stats d ON d.stat_date::text = r.result->>'date'
		WHERE r.backfill_id = $1 ORDER BY r.logical_start`, prog.Backfill.ID)
	require.NoError(t, err)
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	for rows.Next() {
		var param, result string
		var start time.Time
		var stat *string
		require.NoError(t, rows.Scan(&param, &start, &result, &stat))
		want := day.AddDate(0, 0, n).Format(time.DateOnly)
		require.Equal(t, want, param)
		require.Equal(t, want, result)
		require.True(t, start.Equal(day.AddDate(0, 0, n)), "logical start %s", start)
		require.NotNil(t, stat)
		n++
	}
	require.NoError(t, rows.Err())
	require.Equal(t, 30, n)
	var reports int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM daily_stats WHERE stat_date BETWEEN '2026-11-01' AND '2026-11-30'`).Scan(&reports))
	require.Equal(t, 30, reports)

	out, err = jobctl(t, cfgPath, "--json", "backfill", "daily_stats", "--from", "2026-11-01", "--to", "2026-11-30", "--wait")
	require.NoError(t, err, out)
	require.NoError(t, json.Unmarshal([]byte(out), &prog), out)
	require.Equal(t, 0, prog.Published, "a second call publishes nothing")
	require.Equal(t, 30, prog.Succeeded)

	out, err = jobctl(t, cfgPath, "--json", "runs", "--backfill", fmt.Sprint(prog.Backfill.ID), "--limit", "100")
	require.NoError(t, err, out)
	var runs []ledger.Run
	require.NoError(t, json.Unmarshal([]byte(out), &runs), out)
	require.Len(t, runs, 30)
}

// Through a node's admin API (--server), a backfill is published by the node and followed by
// jobctl to the end; asked again, nothing is left to publish.
func TestBackfillThroughServer(t *testing.T) {
	cfgPath, s := reportsConfig(t)
	cfg, err := app.LoadConfig(cfgPath, nil)
	require.NoError(t, err)
	cfg.Admin.Listen, cfg.Admin.Token = "127.0.0.1:0", "tok-for-tests"
	node := &app.Node{Cfg: cfg, Log: testenv.Logger(t), Instance: "n-" + testenv.Suffix()}
	ctx := context.Background()
	require.NoError(t, node.Start(ctx))
	t.Cleanup(func() { _ = node.Stop(context.Background()) })
	srv, err := app.StartAdmin(ctx, node)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	t.Setenv(tokenEnv, "tok-for-tests")

	out, err := jobctl(t, "/nonexistent/jobctl.yaml", "--server", srv.URL(), "backfill", "daily_stats",
		"--from", "2026-11-03", "--to", "2026-11-05", "--wait")
	require.NoError(t, err, out)
	require.Contains(t, out, "3 period(s), 3 of them published now, 3 succeeded")
	var n int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM daily_stats WHERE stat_date BETWEEN '2026-11-03' AND '2026-11-05'`).Scan(&n))
	require.Equal(t, 3, n)
	out, err = jobctl(t, "/nonexistent/jobctl.yaml", "--server", srv.URL(), "backfill", "daily_stats",
		"--from", "2026-11-03", "--to", "2026-11-05", "--wait")
	require.NoError(t, err, out)
	require.Contains(t, out, "0 of them published now, 3 succeeded")
}
