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
	"github.com/chatplat/job-service/internal/demo"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
)

// TestReportsEndToEnd forces both report jobs through the real broker on demo data, with the
// backfill parameters as an operator would type them, and checks the rows they wrote.
func TestReportsEndToEnd(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	ctx := context.Background()
	now := time.Now().UTC()
	_, err := demo.SeedChat(ctx, s.Pool, now)
	require.NoError(t, err)
	m := testenv.NewMQ(t, 4)
	raw := fmt.Sprintf(`
postgres: {dsn: %q}
rocketmq: {name_servers: [%q], topic: %s, consumer_group: %s, producer_group: %s}
ticker: {enabled: false}
jobs:
  daily_stats: {schedule: "0 0 1 * * *", max_attempts: 2}
  group_activity: {schedule: "0 0 2 * * MON", max_attempts: 2}
`, s.DSN, m.Config.NameServers[0], m.Config.Topic, m.Config.ConsumerGroup, m.Config.ProducerGroup)
	cfgPath := filepath.Join(t.TempDir(), "jobctl.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(raw), 0o600))
	cfg, err := app.LoadConfig(cfgPath, nil)
	require.NoError(t, err)
	node := &app.Node{Cfg: cfg, Log: testenv.Logger(t), Instance: "n-" + testenv.Suffix()}
	require.NoError(t, node.Start(ctx))
	t.Cleanup(func() { _ = node.Stop(context.Background()) })

	yesterday := now.AddDate(0, 0, -1).Format(time.DateOnly)
	out, err := jobctl(t, cfgPath, "--json", "run", "daily_stats", "--param", "date="+yesterday, "--wait")
	require.NoError(t, err, out)
	var runs []ledger.Run
	require.NoError(t, json.Unmarshal([]byte(out), &runs), out)
	require.Equal(t, ledger.StatusSucceeded, runs[0].Status)
	var stats handlers.DailyStatsResult
	require.NoError(t, json.Unmarshal(runs[0].Result, &stats))
	require.Equal(t, yesterday, stats.Date)
	require.Equal(t, int64(demo.NewUsers), stats.NewUsers)
	var dau int64
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT active_users FROM daily_stats WHERE stat_date = $1`, yesterday).Scan(&dau))
	require.Equal(t, stats.DAU, dau)
	require.Positive(t, dau)

	// Messages reach ten days back, so the week before this one has ranked groups.
	week := handlers.ISOWeekLabel(now.AddDate(0, 0, -7))
	out, err = jobctl(t, cfgPath, "--json", "run", "group_activity", "--param", "week="+week, "--wait")
	require.NoError(t, err, out)
	require.NoError(t, json.Unmarshal([]byte(out), &runs), out)
	require.Equal(t, ledger.StatusSucceeded, runs[0].Status)
	var rank handlers.GroupActivityResult
	require.NoError(t, json.Unmarshal(runs[0].Result, &rank))
	require.Equal(t, week, rank.Week)
	require.Positive(t, rank.Ranked)
	var n int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM group_activity_rank WHERE stat_week = $1`, week).Scan(&n))
	require.Equal(t, rank.Ranked, n)

	// A week that does not exist is refused before anything is recorded or published: the
	// run's period is decided (and its params checked) when it is recorded.
	out, err = jobctl(t, cfgPath, "run", "group_activity", "--param", "week=2027-53")
	require.Error(t, err, out)
	require.ErrorContains(t, err, "2027-53")
	require.ErrorContains(t, err, "weeks 1..52")
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM job_runs WHERE job = 'group_activity'
		AND params->>'week' = '2027-53'`).Scan(&n))
	require.Zero(t, n)
}
