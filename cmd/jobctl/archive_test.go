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

	"github.com/chatplat/job-service/archive"
	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/demo"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
)

// TestArchiveEndToEnd: the demo's old month goes through the whole path: jobctl forces a
// partition_archive run through the real broker, a node archives the partition to the real
// S3, `jobctl archive list` shows it and `jobctl archive restore` brings it back, verified.
func TestArchiveEndToEnd(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	m := testenv.NewMQ(t, 4)
	b := testenv.NewBucket(t)
	raw := fmt.Sprintf(`
postgres: {dsn: %q}
rocketmq: {name_servers: [%q], topic: %s, consumer_group: %s, producer_group: %s}
ticker: {enabled: false}
s3: {endpoint: %q, access_key: %q, secret_key: %q}
jobs:
  partition_archive: {max_attempts: 2}
handlers:
  partition_archive:
    bucket: %s
    tables: [{table: chat_messages, hot_months: 12}]
`, s.DSN, m.Config.NameServers[0], m.Config.Topic, m.Config.ConsumerGroup, m.Config.ProducerGroup,
		testenv.S3Endpoint(), testenv.S3AccessKey(), testenv.S3SecretKey(), b.Name)
	cfgPath := filepath.Join(t.TempDir(), "jobctl.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(raw), 0o600))
	cfg, err := app.LoadConfig(cfgPath, nil)
	require.NoError(t, err)
	node := &app.Node{Cfg: cfg, Log: testenv.Logger(t), Instance: "n-" + testenv.Suffix()}
	require.NoError(t, node.Start(context.Background()))
	t.Cleanup(func() { _ = node.Stop(context.Background()) })

	ctx := context.Background()
	part, filled, err := demo.SeedOldMonth(ctx, s.Pool, time.Now())
	require.NoError(t, err)
	require.True(t, filled)

	// Dry run first: lists the month, moves nothing.
	out, err := jobctl(t, cfgPath, "--json", "run", "partition_archive", "--wait", "--param", "dry_run=true")
	require.NoError(t, err, out)
	var runs []ledger.Run
	require.NoError(t, json.Unmarshal([]byte(out), &runs), out)
	var res archive.Result
	require.NoError(t, json.Unmarshal(runs[0].Result, &res))
	require.True(t, res.DryRun)
	require.Len(t, res.Items, 1)
	require.Equal(t, "would_archive", res.Items[0].Action)
	require.Equal(t, part, res.Items[0].Partition)
	out, err = jobctl(t, cfgPath, "archive", "list")
	require.NoError(t, err)
	require.Contains(t, out, "no archived partitions")

	out, err = jobctl(t, cfgPath, "--json", "run", "partition_archive", "--wait")
	require.NoError(t, err, out)
	require.NoError(t, json.Unmarshal([]byte(out), &runs), out)
	require.Equal(t, ledger.StatusSucceeded, runs[0].Status)
	require.NoError(t, json.Unmarshal(runs[0].Result, &res))
	require.Equal(t, "archived", res.Items[0].Action, "%+v", res.Items)
	require.EqualValues(t, demo.OldMonthMessages, res.Items[0].Rows)

	out, err = jobctl(t, cfgPath, "archive", "list")
	require.NoError(t, err)
	require.Contains(t, out, part)
	require.Contains(t, out, "dropped")
	out, err = jobctl(t, cfgPath, "--json", "archive", "list", "--state", "dropped")
	require.NoError(t, err)
	var entries []archive.Entry
	require.NoError(t, json.Unmarshal([]byte(out), &entries))
	require.Len(t, entries, 1)
	require.Equal(t, runs[0].ID, *entries[0].RunID, "the manifest names the run")

	// seed-demo again leaves an archived month alone.
	_, filled, err = demo.SeedOldMonth(ctx, s.Pool, time.Now())
	require.NoError(t, err)
	require.False(t, filled)

	_, err = jobctl(t, cfgPath, "archive", "restore", "chat_messages", part, "--attach", "--separate")
	require.ErrorContains(t, err, "exclude each other")
	out, err = jobctl(t, cfgPath, "archive", "restore", "chat_messages", part, "--separate")
	require.NoError(t, err, out)
	require.Contains(t, out, fmt.Sprintf("%d rows", demo.OldMonthMessages))
	var n int
	require.NoError(t, s.Pool.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s_restored`, part)).Scan(&n))
	require.Equal(t, demo.OldMonthMessages, n)
	out, err = jobctl(t, cfgPath, "archive", "list")
	require.NoError(t, err)
	require.Contains(t, out, "restored")

	// A table that is not range-partitioned by time fails the run without retries.
	out, err = jobctl(t, cfgPath, "run", "partition_archive", "--wait", "--param", `tables=["users"]`)
	require.Error(t, err, out)
	require.Contains(t, out, "failed")
}
