package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/admin"
	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// talkArgs are the params of ops_talk; Validate is the job's own rule the console must apply
// before publishing.
type talkArgs struct {
	Lines int  `json:"lines"`
	Block bool `json:"block,omitempty"` // run until cancelled
}

func (a talkArgs) Validate() error {
	if a.Lines < 0 || a.Lines > 1000 {
		return fmt.Errorf("lines: %d is outside 0..1000", a.Lines)
	}
	return nil
}

// talk logs through the node's logger like real handlers, then blocks until cancelled or ends.
type talk struct{ node *app.Node }

func (talk) Kind() string { return "ops_talk" }
func (h talk) Run(ctx context.Context, run *job.Run[talkArgs]) (any, error) {
	for i := 1; i <= run.Args.Lines; i++ {
		h.node.Log.InfoContext(ctx, "talk line", "n", i, "shard", run.Shard.Index)
	}
	if run.Args.Block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return map[string]int{"lines": run.Args.Lines}, nil
}

// startTalkStack is startStack with the ops_talk job and a short heartbeat.
func startTalkStack(t *testing.T) *stack {
	t.Helper()
	s := testenv.NewSchema(t)
	m := testenv.NewMQ(t, 4)
	name := "rc-" + testenv.Suffix()
	raw := fmt.Sprintf(`
node: %s
postgres: {dsn: %q}
rocketmq: {name_servers: [%q], topic: %s, consumer_group: %s, producer_group: %s}
ticker: {enabled: false}
consumer: {heartbeat_interval: 500ms, stale_after: 3s}
admin: {listen: "127.0.0.1:0", token: %q}
jobs:
  ops_talk: {max_attempts: 3, timeout: 2m}
`, name, s.DSN, m.Config.NameServers[0], m.Config.Topic, m.Config.ConsumerGroup, m.Config.ProducerGroup, token)
	cfg, err := app.ParseConfig([]byte(raw), nil)
	require.NoError(t, err)
	node := &app.Node{Cfg: cfg, Log: testenv.Logger(t), Instance: name}
	node.ExtraRegister = func(r *job.Registry) {
		job.Register(r, warmup{})
		job.Register(r, talk{node: node})
	}
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

// runOf waits for the run row of runKey's shard 0 to reach one of statuses.
func (s *stack) runOf(t *testing.T, runKey string, statuses ...ledger.Status) ledger.Run {
	t.Helper()
	var run ledger.Run
	testenv.Eventually(t, 60*time.Second, func() bool {
		runs, err := s.node.Ledger.ListRuns(context.Background(), ledger.RunFilter{RunKey: runKey})
		require.NoError(t, err)
		for _, r := range runs {
			for _, st := range statuses {
				if r.Status == st {
					run = r
					return true
				}
			}
		}
		return false
	}, "run %s to be %v", runKey, statuses)
	return run
}

// The API refuses params the job's own rules refuse, before anything is published.
func TestForceRunChecksParamsByTheJobsRules(t *testing.T) {
	s := startTalkStack(t)
	for body, want := range map[string]string{
		`{"params":{"lines":-1}}`:   "lines: -1 is outside 0..1000",
		`{"params":{"colour":"x"}}`: `unknown field \"colour\"`,
		`{"params":{"lines":"x"}}`:  "cannot unmarshal string",
		`{"shards":2000}`:           "shard",
	} {
		code, resp := s.do(t, "POST", "/api/jobs/ops_talk/run", token, body)
		require.Equal(t, http.StatusBadRequest, code, body)
		require.Contains(t, resp, want, body)
	}
	runs, err := s.node.Ledger.ListRuns(context.Background(), ledger.RunFilter{Job: "ops_talk"})
	require.NoError(t, err)
	require.Empty(t, runs, "nothing was published, so nothing was rejected")

	code, resp := s.do(t, "POST", "/api/jobs/ops_talk/run", token, `{"params":{"lines":2},"shards":2}`)
	require.Equal(t, http.StatusAccepted, code, resp)
	var f admin.ForceResponse
	require.NoError(t, json.Unmarshal([]byte(resp), &f))
	runs = s.waitRun(t, f.RunKey)
	require.Len(t, runs, 2)
	for _, r := range runs {
		require.Equal(t, ledger.StatusSucceeded, r.Status)
		code, resp = s.do(t, "GET", "/api/runs/"+strconv.FormatInt(r.ID, 10)+"/logs", "", "")
		require.Equal(t, http.StatusOK, code)
		var logs admin.LogsResponse
		require.NoError(t, json.Unmarshal([]byte(resp), &logs))
		require.True(t, logs.Done)
		// The node's start line, the handler's two lines, the node's finish line.
		require.Len(t, logs.Lines, 4, resp)
		require.Equal(t, "run started", logs.Lines[0].Msg)
		require.Equal(t, fmt.Sprintf("n=2 shard=%d", r.ShardIndex), logs.Lines[2].Attrs)
		require.Equal(t, "run finished", logs.Lines[3].Msg)
	}
	code, _ = s.do(t, "GET", "/api/runs/999999/logs", "", "")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = s.do(t, "POST", "/api/runs/999999/cancel", token, "")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = s.do(t, "POST", "/api/runs/"+strconv.FormatInt(runs[0].ID, 10)+"/retry", token, "")
	require.Equal(t, http.StatusConflict, code, "a succeeded run is not retried")
	code, _ = s.do(t, "POST", "/api/runs/"+strconv.FormatInt(runs[0].ID, 10)+"/cancel", "", "")
	require.Equal(t, http.StatusUnauthorized, code)
}

// The console in Chromium: Run with params (a bad value refused inline, a good one published
// with 2 shards), the run page showing the log while the run runs, Cancel ending it cancelled,
// and Retry making a linked run.
func TestConsoleParamsLogsCancelRetryInChromium(t *testing.T) {
	testenv.Integration(t)
	s := startTalkStack(t)
	ctx := browser(t)

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(s.url+"jobs/ops_talk"),
		chromedp.SetValue(chromedp.CSS(`#token`), token), click(`#token-form button`),
		chromedp.SetValue(chromedp.CSS(`#run-params`), `{"lines": 5000}`),
		click(`#run-submit`)))
	textContains(t, ctx, `#run-form-error`, "lines: 5000 is outside 0..1000")
	require.NoError(t, chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS(`#run-params`), `{"lines": `), click(`#run-submit`)))
	textContains(t, ctx, `#run-form-error`, "not JSON")

	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`#run-params`), `{"lines": 3, "block": true}`),
		chromedp.SetValue(chromedp.CSS(`#run-shards`), "2"),
		click(`#run-submit`)))
	runKey := text(t, ctx, `#run-form-run`)
	require.True(t, strings.HasPrefix(runKey, "manual:"), runKey)
	run := s.runOf(t, runKey, ledger.StatusRunning)
	require.Equal(t, 2, run.ShardTotal)
	require.JSONEq(t, `{"lines": 3, "block": true}`, string(run.Params))

	// The run page follows the log while the run runs.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(fmt.Sprintf("%sruns/%d", s.url, run.ID))))
	testenv.Eventually(t, 20*time.Second, func() bool {
		return strings.Count(text(t, ctx, `#logs`), "talk line") == 3
	}, "the 3 lines on the run page")
	require.Contains(t, text(t, ctx, `#logs`), "INFO")
	require.Contains(t, text(t, ctx, `#logs`), "n=3")
	require.Equal(t, "running", text(t, ctx, `#run-status`))
	screenshot(t, ctx, "run-logs.png")

	require.NoError(t, chromedp.Do(ctx, click(`#cancel-run`)))
	require.Contains(t, text(t, ctx, `#flash.ok`), "cancel requested")
	testenv.Eventually(t, 20*time.Second, func() bool {
		return text(t, ctx, `#run-status`) == "cancelled"
	}, "the page to show the run cancelled")
	cancelled, err := s.node.Ledger.GetRun(context.Background(), run.ID)
	require.NoError(t, err)
	require.Equal(t, ledger.StatusCancelled, cancelled.Status)
	require.True(t, strings.HasPrefix(cancelled.Error, "cancelled by admin-api@"), cancelled.Error)
	screenshot(t, ctx, "run-cancelled.png")

	// The other shard still runs (and would make the retry skip_if_running): cancel it too.
	runs, err := s.node.Ledger.ListRuns(context.Background(), ledger.RunFilter{RunKey: runKey})
	require.NoError(t, err)
	for _, r := range runs {
		if r.ID != run.ID {
			code, body := s.do(t, "POST", fmt.Sprintf("/api/runs/%d/cancel", r.ID), token, "")
			require.Equal(t, http.StatusAccepted, code, body)
			s.runByID(t, r.ID, ledger.StatusCancelled)
		}
	}

	// Reloaded, the cancelled run offers Retry; the retry is a new run linked back.
	require.NoError(t, chromedp.Do(ctx, chromedp.Reload()))
	require.Contains(t, text(t, ctx, `#cancel-requested`), "requested by admin-api@")
	require.NoError(t, chromedp.Do(ctx, click(`#retry-run`)))
	link := text(t, ctx, `#retry-run-link`)
	retryID, err := strconv.ParseInt(strings.TrimPrefix(link, "run "), 10, 64)
	require.NoError(t, err, link)
	require.NoError(t, chromedp.Do(ctx, click(`#retry-run-link`)))
	require.Equal(t, fmt.Sprintf("run %d", run.ID), text(t, ctx, `#retry-of`))
	// The retry blocks too (same params); cancel it through the API so the node stops cleanly.
	s.runByID(t, retryID, ledger.StatusRunning)
	code, body := s.do(t, "POST", fmt.Sprintf("/api/runs/%d/cancel", retryID), token, `{"requested_by":"test"}`)
	require.Equal(t, http.StatusAccepted, code, body)
	require.Equal(t, ledger.StatusCancelled, s.runByID(t, retryID, ledger.StatusCancelled).Status)
}

func (s *stack) runByID(t *testing.T, id int64, want ledger.Status) ledger.Run {
	t.Helper()
	var run ledger.Run
	testenv.Eventually(t, 30*time.Second, func() bool {
		var err error
		run, err = s.node.Ledger.GetRun(context.Background(), id)
		if errors.Is(err, ledger.ErrNotFound) {
			return false
		}
		require.NoError(t, err)
		return run.Status == want
	}, "run %d to be %s", id, want)
	return run
}
