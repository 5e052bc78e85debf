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
	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
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
	cfg, err := app.ParseConfig([]byte(raw), nil)
	require.NoError(t, err)
	node := &app.Node{Cfg: cfg, Log: testenv.Logger(t), Instance: name,
		ExtraRegister: func(r *job.Registry) { job.Register(r, warmup{}) }}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, node.Start(ctx))
	t.Cleanup(func() { _ = node.Stop(context.Background()) })
	srv, err := app.StartAdmin(ctx, node)
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	warmUp(t, node)
	return &stack{node: node, admin: srv, url: srv.URL()}
}

// warmup is a job kind that does nothing, for warmUp.
type warmup struct{}

func (warmup) Kind() string { return "ops_warmup" }
func (warmup) Run(context.Context, *job.Run[struct{}]) (any, error) {
	return map[string]bool{"ok": true}, nil
}

// warmUp waits until the node's consumer really consumes. A brand-new consumer group starts
// each queue at its last offset when it first balances, which happens just after Start
// returns; a message published in between is skipped for good (seen on the shared broker:
// the group's offset moved past the message, no delivery). Production groups have committed
// offsets, so this only concerns tests' fresh groups. A no-op run is republished until one is
// consumed; after that every queue has its start offset and nothing published later is lost.
func warmUp(t *testing.T, node *app.Node) {
	t.Helper()
	ctx := context.Background()
	for try := 0; try < 6; try++ {
		mr, err := job.NewManualRun("ops_warmup", nil, 1, "warmup", time.Now(), nil)
		require.NoError(t, err)
		_, err = node.Producer.Publish(ctx, mr.Envelopes[0], time.Time{})
		require.NoError(t, err)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			g, err := node.Ledger.RunGroupByKey(ctx, "ops_warmup", mr.RunKey)
			require.NoError(t, err)
			if g.Done() {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("warm-up run %s not consumed within 10s; publishing another", mr.RunKey)
	}
	t.Fatal("the node's consumer consumed none of 6 warm-up runs in 60s")
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

// waitRun polls the API until every shard of runKey ended, and returns the runs (usually
// within a second; the bound is generous for a loaded shared broker).
func (s *stack) waitRun(t *testing.T, runKey string) []ledger.Run {
	t.Helper()
	var page admin.RunsPage
	testenv.Eventually(t, 90*time.Second, func() bool {
		code, body := s.do(t, "GET", "/api/runs?run_key="+runKey, "", "")
		require.Equal(t, http.StatusOK, code, body)
		page = admin.RunsPage{}
		require.NoError(t, json.Unmarshal([]byte(body), &page))
		// Every shard's row, each finished: a run's shards are claimed one by one.
		if len(page.Runs) == 0 || len(page.Runs) < page.Runs[0].ShardTotal {
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
