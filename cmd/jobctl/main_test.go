package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
)

func TestMain(m *testing.M) {
	app.QuietRocketMQ()
	os.Exit(m.Run())
}

func jobctl(t *testing.T, cfgPath string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := rootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"--config", cfgPath}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// TestRunWaitPartitionEndToEnd is the spine end to end: jobctl publishes a manual
// pg_partition run through the real broker, a node consumes it, the partitions appear in
// Postgres, and jobctl follows the ledger to the outcome.
func TestRunWaitPartitionEndToEnd(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	m := testenv.NewMQ(t, 4)
	raw := fmt.Sprintf(`
postgres: {dsn: %q}
rocketmq: {name_servers: [%q], topic: %s, consumer_group: %s, producer_group: %s}
ticker: {enabled: false}
jobs:
  pg_partition: {schedule: "@daily", max_attempts: 2}
handlers:
  pg_partition: {premake: 2}
`, s.DSN, m.Config.NameServers[0], m.Config.Topic, m.Config.ConsumerGroup, m.Config.ProducerGroup)
	cfgPath := filepath.Join(t.TempDir(), "jobctl.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(raw), 0o600))
	cfg, err := app.LoadConfig(cfgPath, nil)
	require.NoError(t, err)
	node := &app.Node{Cfg: cfg, Log: testenv.Logger(t), Instance: "n-" + testenv.Suffix()}
	require.NoError(t, node.Start(context.Background()))
	t.Cleanup(func() { _ = node.Stop(context.Background()) })

	out, err := jobctl(t, cfgPath, "--json", "run", "pg_partition", "--wait")
	require.NoError(t, err, out)
	var runs []ledger.Run
	require.NoError(t, json.Unmarshal([]byte(out), &runs), out)
	require.Len(t, runs, 1)
	require.Equal(t, ledger.StatusSucceeded, runs[0].Status)
	require.Equal(t, "manual", runs[0].Trigger)
	var res struct {
		Tables []struct {
			Table   string   `json:"table"`
			Created []string `json:"created"`
		} `json:"tables"`
	}
	require.NoError(t, json.Unmarshal(runs[0].Result, &res))
	require.Len(t, res.Tables, 2)
	require.Len(t, res.Tables[0].Created, 3, "current month + premake 2")

	var n int
	require.NoError(t, s.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace ns ON ns.oid = p.relnamespace
		 WHERE p.relname = 'chat_messages' AND ns.nspname = $1`, s.Name).Scan(&n))
	require.Equal(t, 4, n, "three monthly partitions plus the default")

	// The other commands read the same ledger.
	out, err = jobctl(t, cfgPath, "runs", "--job", "pg_partition")
	require.NoError(t, err)
	require.Contains(t, out, "succeeded")
	out, err = jobctl(t, cfgPath, "--json", "jobs")
	require.NoError(t, err)
	require.Contains(t, out, `"last_status": "succeeded"`)
	out, err = jobctl(t, cfgPath, "show", fmt.Sprint(runs[0].ID))
	require.NoError(t, err)
	require.Contains(t, out, "#1 succeeded")
	_, err = jobctl(t, cfgPath, "pause", "pg_partition")
	require.NoError(t, err)
	out, err = jobctl(t, cfgPath, "jobs")
	require.NoError(t, err)
	require.Contains(t, out, "paused")

	// A run that fails makes --wait exit non-zero.
	out, err = jobctl(t, cfgPath, "run", "pg_partition", "--wait", "--param", "tables=[\"no_such_table\"]")
	require.Error(t, err, out)
	require.Equal(t, 2, exitCode(err))
	require.Contains(t, out, "failed")

	// Params the handler refuses are rejected by the consumer; --wait says so instead of waiting.
	out, err = jobctl(t, cfgPath, "run", "pg_partition", "--wait", "--param", "premake=-4")
	require.Error(t, err, out)
	require.Equal(t, 2, exitCode(err))
	require.ErrorContains(t, err, "rejected")
	require.ErrorContains(t, err, "premake -4")

	// Bad input gets a clear error before anything is published.
	_, err = jobctl(t, cfgPath, "run", "no_such_job")
	require.ErrorContains(t, err, `unknown job "no_such_job"`)
	_, err = jobctl(t, cfgPath, "run", "pg_partition", "--param", "novalue")
	require.ErrorContains(t, err, "want key=value")
}

func TestParseSince(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"24h":        now.Add(-24 * time.Hour),
		"7d":         now.AddDate(0, 0, -7),
		"2026-11-01": time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
	} {
		got, err := parseSince(in, now)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := parseSince("last tuesday", now)
	require.Error(t, err)
}
