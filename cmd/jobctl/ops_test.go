package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/testenv"
)

func writeConfig(t *testing.T, raw string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jobctl.yaml")
	require.NoError(t, os.WriteFile(p, []byte(raw), 0o600))
	return p
}

// TestClearErrors: a wrong config, database or broker gives one line that says which.
func TestClearErrors(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := jobctl(t, missing, "runs")
	require.ErrorContains(t, err, missing)
	require.ErrorContains(t, err, "no such file")

	badPG := writeConfig(t, "postgres: {dsn: \"postgres://u:p@127.0.0.1:1/db?sslmode=disable&connect_timeout=3\"}\n")
	for _, args := range [][]string{{"runs"}, {"jobs"}, {"backlog", "--lag=false"}, {"pause", "pg_partition"}, {"show", "1"}} {
		_, err = jobctl(t, badPG, args...)
		require.Error(t, err, args)
		require.Contains(t, err.Error(), "127.0.0.1:1", args)
		require.NotContains(t, err.Error(), "\n", "one line")
		require.NotContains(t, err.Error(), ":p@", "no password in the message")
	}

	badMQ := writeConfig(t, "postgres: {dsn: \"postgres://u:p@127.0.0.1:1/db\"}\nrocketmq: {name_servers: [\"127.0.0.1:1\"]}\n")
	_, err = jobctl(t, badMQ, "run", "pg_partition")
	require.ErrorContains(t, err, "rocketmq.name_servers: no name server reachable (127.0.0.1:1")

	badKey := writeConfig(t, "postgres: {dsn: \"postgres://u:p@127.0.0.1:1/db\"}\nticker: {intervall: 1s}\n")
	_, err = jobctl(t, badKey, "runs")
	require.ErrorContains(t, err, "intervall")
}

func TestParseConsumerProgress(t *testing.T) {
	t.Parallel()
	out := "#Topic  #Broker Name  #QID ...\nJOB_TOPIC broker-a 1 1 0 1 0 N/A\n\nConsume TPS: 0.00\nConsume Diff Total: 17\nConsume Inflight Total: 0\n"
	n, err := parseConsumerProgress(out)
	require.NoError(t, err)
	require.Equal(t, int64(17), n)
	_, err = parseConsumerProgress("org.apache.rocketmq.tools.command.SubCommandException: ...")
	require.Error(t, err)

	cfg := &config.Config{}
	cfg.RocketMQ.ConsumerGroup = "g"
	r := readLag(context.Background(), cfg, filepath.Join(t.TempDir(), "missing.sh"), "")
	require.Nil(t, r.Messages)
	require.Contains(t, r.String(), "RocketMQ lag of group g: unavailable")
}

// TestBacklogShowsLag reads the consumer-group lag of a live group through the local stack's
// mqadmin.sh.
func TestBacklogShowsLag(t *testing.T) {
	s := testenv.NewSchema(t)
	m := testenv.NewMQ(t, 2)
	cfgPath := writeConfig(t, fmt.Sprintf(`
postgres: {dsn: %q}
rocketmq: {name_servers: [%q], topic: %s, consumer_group: %s, producer_group: %s}
ticker: {enabled: false}
`, s.DSN, m.Config.NameServers[0], m.Config.Topic, m.Config.ConsumerGroup, m.Config.ProducerGroup))
	cfg, err := app.LoadConfig(cfgPath, nil)
	require.NoError(t, err)
	node := &app.Node{Cfg: cfg, Log: testenv.Logger(t), Instance: "lag-" + testenv.Suffix()}
	require.NoError(t, node.Start(context.Background()))
	t.Cleanup(func() { _ = node.Stop(context.Background()) })

	script := filepath.Join(testenv.RepoRoot(t), "deploy", "local", "mqadmin.sh")
	var out string
	testenv.Eventually(t, 90*time.Second, func() bool {
		out, err = jobctl(t, cfgPath, "--json", "backlog", "--mqadmin", script)
		require.NoError(t, err, out)
		if !strings.Contains(out, `"messages"`) {
			t.Logf("lag not readable yet: %s", out)
			return false
		}
		return true
	}, "the group's lag to become readable")
	var res struct {
		Ledger []any     `json:"ledger"`
		Lag    lagReport `json:"rocketmq_lag"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, m.Config.ConsumerGroup, res.Lag.Group)
	require.NotNil(t, res.Lag.Messages)
	require.GreaterOrEqual(t, *res.Lag.Messages, int64(0))
	require.NotNil(t, res.Ledger)
}
