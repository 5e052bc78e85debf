package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/admin"
	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
)

func TestMain(m *testing.M) {
	app.QuietRocketMQ()
	os.Exit(m.Run())
}

const token = "e2e-admin-token-0123456789"

// stack is one real node (fresh schema, fresh topic) with its admin server on a free port.
type stack struct {
	node  *app.Node
	admin *admin.Server
	url   string // the console, ending in /
}

func startStack(t *testing.T) *stack {
	t.Helper()
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	m := testenv.NewMQ(t, 4)
	name := "ops-" + testenv.Suffix()
	raw := fmt.Sprintf(`
node: %s
postgres: {dsn: %q}
rocketmq: {name_servers: [%q], topic: %s, consumer_group: %s, producer_group: %s}
ticker: {enabled: false}
admin: {listen: "127.0.0.1:0", token: %q}
jobs:
  pg_partition: {schedule: "@daily", max_attempts: 2}
handlers:
  pg_partition: {premake: 1}
`, name, s.DSN, m.Config.NameServers[0], m.Config.Topic, m.Config.ConsumerGroup, m.Config.ProducerGroup, token)
	cfg, err := config.Parse([]byte(raw), nil)
	require.NoError(t, err)
	node := &app.Node{Cfg: cfg, Log: testenv.Logger(t), Instance: name}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, node.Start(ctx))
	t.Cleanup(func() { _ = node.Stop(context.Background()) })
	srv, err := app.StartAdmin(ctx, node)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	return &stack{node: node, admin: srv, url: srv.URL()}
}

func (s *stack) do(t *testing.T, method, path, tok, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+strings.TrimPrefix(path, "/"), strings.NewReader(body))
	require.NoError(t, err)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b)
}

// waitRun polls the API until every shard of runKey ended, and returns the runs. Usually that
// takes under a second; the bound is generous because once in a while (seen 2 in ~20 runs on
// the shared broker) a fresh group's first delivery waits for the client's next rebalance
// (every 20 s) or route refresh (every 30 s).
func (s *stack) waitRun(t *testing.T, runKey string) []ledger.Run {
	t.Helper()
	var page admin.RunsPage
	testenv.Eventually(t, 150*time.Second, func() bool {
		code, body := s.do(t, "GET", "/api/runs?run_key="+runKey, "", "")
		require.Equal(t, http.StatusOK, code, body)
		page = admin.RunsPage{}
		require.NoError(t, json.Unmarshal([]byte(body), &page))
		if len(page.Runs) == 0 {
			return false
		}
		for _, r := range page.Runs {
			if !r.Status.Terminal() {
				return false
			}
		}
		return true
	}, "run %s to finish", runKey)
	return page.Runs
}

// screenshotDir is testdata/screenshots at the repository root (ignored by git).
func screenshotDir(t *testing.T) string {
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "screenshots")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}
