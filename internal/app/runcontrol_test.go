package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/admin"
	"github.com/chatplat/job-service/consumer"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// talkArgs are the params of the "talk" test job.
type talkArgs struct {
	Lines int  `json:"lines"`
	Block bool `json:"block,omitempty"` // run until cancelled
}

// talker logs through the node's logger, as real handlers do, and can block or fail.
type talker struct {
	node *Node
	fail *atomic.Bool
}

func (talker) Kind() string { return "talk" }
func (h talker) Run(ctx context.Context, run *job.Run[talkArgs]) (any, error) {
	for i := 1; i <= run.Args.Lines; i++ {
		h.node.Log.InfoContext(ctx, "talk line", "n", i)
	}
	if run.Args.Block {
		<-ctx.Done()
		h.node.Log.WarnContext(ctx, "talk stopping", "cause", context.Cause(ctx).Error())
		return nil, ctx.Err()
	}
	if h.fail.Load() {
		return nil, job.Discard("asked to fail", errors.New("talk failed"))
	}
	return map[string]int{"lines": run.Args.Lines}, nil
}

func (c *cluster) startWithAdmin(name string, fail *atomic.Bool) (*Node, *admin.Server) {
	cfg := c.cfg(name)
	off := false
	cfg.Ticker.Enabled = &off
	cfg.Admin.Listen, cfg.Admin.Token = "127.0.0.1:0", "rc-token"
	n := &Node{Cfg: cfg, Log: testenv.Logger(c.t).With("node", name), Instance: name + "-" + testenv.Suffix()}
	n.ExtraRegister = func(r *job.Registry) { job.Register(r, talker{node: n, fail: fail}) }
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(c.t, n.Start(ctx))
	c.t.Cleanup(func() { _ = n.Stop(context.Background()) })
	srv, err := StartAdmin(ctx, n)
	require.NoError(c.t, err)
	c.t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	return n, srv
}

func apiCall(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer rc-token")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	if out != nil && res.StatusCode < 300 {
		require.NoError(t, json.Unmarshal(b, out), string(b))
	}
	if res.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", method, url, res.StatusCode, b)
	}
	return res.StatusCode
}

// Issue 12 items 1-3 on two real nodes: a run on one node is cancelled through the other
// node's API and stops within a heartbeat, ending cancelled without retry; what it logged is
// readable through either node while it runs and after; a failed run is retried through the
// API and by resending its dead letter.
func TestCancelFromAnotherNodeLogsAndRetry(t *testing.T) {
	c := newCluster(t, `  talk: {max_attempts: 3, timeout: 1m}`)
	var fail atomic.Bool
	a, adminA := c.startWithAdmin("a", &fail)
	b, adminB := c.startWithAdmin("b", &fail)
	ctx := context.Background()

	env := manual("talk", "manual:cancel-"+testenv.Suffix(), 1, `{"lines":3,"block":true}`)
	c.publish(c.producer(), env...)
	var runner, asker *admin.Server
	testenv.Eventually(t, 30*time.Second, func() bool {
		switch {
		case a.Proc.InFlight() == 1:
			runner, asker = adminA, adminB
		case b.Proc.InFlight() == 1:
			runner, asker = adminB, adminA
		}
		return runner != nil
	}, "the blocking run to start on a node")
	runs, err := a.Ledger.ListRuns(ctx, ledger.RunFilter{RunKey: env[0].RunKey})
	require.NoError(t, err)
	id := runs[0].ID
	t.Logf("run %d runs behind %s; asking %s", id, runner.URL(), asker.URL())

	// Logs of the running run, flushed at its node's heartbeat, read through the other node.
	var logs admin.LogsResponse
	testenv.Eventually(t, 10*time.Second, func() bool {
		require.Equal(t, http.StatusOK, apiCall(t, "GET", fmt.Sprintf("%sapi/runs/%d/logs", asker.URL(), id), "", &logs))
		return len(logs.Lines) == 4
	}, "the running run's start line and 3 lines")
	require.False(t, logs.Done)
	require.Equal(t, "run started", logs.Lines[0].Msg)
	require.Equal(t, "INFO", logs.Lines[1].Level)
	require.Equal(t, "talk line", logs.Lines[1].Msg)
	require.Equal(t, "n=1", logs.Lines[1].Attrs)

	var cr admin.CancelResponse
	asked := time.Now()
	require.Equal(t, http.StatusAccepted, apiCall(t, "POST", fmt.Sprintf("%sapi/runs/%d/cancel", asker.URL(), id), `{"requested_by":"alice"}`, &cr))
	require.True(t, cr.Pending)
	var run ledger.Run
	testenv.Eventually(t, 10*time.Second, func() bool {
		run, err = a.Ledger.GetRun(ctx, id)
		require.NoError(t, err)
		return run.Status.Terminal()
	}, "the cancelled run to end")
	took := time.Since(asked)
	t.Logf("cancel took %s (heartbeat_interval 500ms)", took)
	require.Less(t, took, 3*time.Second, "stopped within a few heartbeats")
	require.Equal(t, ledger.StatusCancelled, run.Status)
	require.Equal(t, "cancelled by alice", run.Error)

	// The line logged after the cancel was flushed with the outcome.
	require.Equal(t, http.StatusOK, apiCall(t, "GET", fmt.Sprintf("%sapi/runs/%d/logs?after=%d", runner.URL(), id, logs.Next), "", &logs))
	require.True(t, logs.Done)
	require.Len(t, logs.Lines, 2)
	require.Equal(t, "WARN", logs.Lines[0].Level)
	require.Contains(t, logs.Lines[0].Attrs, "cancelled by alice")
	require.Equal(t, "run finished", logs.Lines[1].Msg)
	require.Contains(t, logs.Lines[1].Attrs, "status=cancelled")

	// No retry: the message was acknowledged. Past two retry backoffs there is still one attempt.
	time.Sleep(2500 * time.Millisecond)
	attempts, err := a.Ledger.Attempts(ctx, id)
	require.NoError(t, err)
	require.Len(t, attempts, 1)
	require.Equal(t, "cancelled", attempts[0].Outcome)
	require.Equal(t, http.StatusConflict, apiCall(t, "POST", fmt.Sprintf("%sapi/runs/%d/cancel", asker.URL(), id), "", nil))

	// A failed run retried through the API: a new linked run that succeeds.
	fail.Store(true)
	failedEnv := manual("talk", "manual:fail-"+testenv.Suffix(), 1, `{"lines":1}`)
	c.publish(c.producer(), failedEnv...)
	g := c.waitGroup(a.Ledger, "talk", failedEnv[0].RunKey, 30*time.Second)
	require.Equal(t, 1, g.ByStatus[ledger.StatusFailed], "%v", g.ByStatus)
	failedRuns, err := a.Ledger.ListRuns(ctx, ledger.RunFilter{RunKey: failedEnv[0].RunKey})
	require.NoError(t, err)
	fail.Store(false)
	var rr admin.RetryResponse
	require.Equal(t, http.StatusAccepted, apiCall(t, "POST", fmt.Sprintf("%sapi/runs/%d/retry", asker.URL(), failedRuns[0].ID), `{"requested_by":"bob"}`, &rr))
	g = c.waitGroup(a.Ledger, "talk", rr.RunKey, 30*time.Second)
	require.True(t, g.Succeeded(), "%v", g.ByStatus)
	var detail admin.RunDetail
	require.Equal(t, http.StatusOK, apiCall(t, "GET", fmt.Sprintf("%sapi/runs/%d", runner.URL(), rr.RetryRunID), "", &detail))
	require.Equal(t, "bob", detail.Run.RequestedBy)
	require.Equal(t, failedRuns[0].ID, detail.Control.RetryOf)

	// The dead letter of a failed run, resent from the DLQ (the dashboard hands it to a consumer
	// of the group with its %DLQ% topic, as below): retried once, however often it is resent.
	fail.Store(true)
	dlqEnv := manual("talk", "manual:dlq-"+testenv.Suffix(), 1, `{"lines":1}`)
	c.publish(c.producer(), dlqEnv...)
	g = c.waitGroup(a.Ledger, "talk", dlqEnv[0].RunKey, 30*time.Second)
	require.Equal(t, 1, g.ByStatus[ledger.StatusFailed], "%v", g.ByStatus)
	fail.Store(false)
	body, err := job.Encode(dlqEnv[0])
	require.NoError(t, err)
	d := consumer.Delivery{Body: body, MsgID: "DLQMSG" + testenv.Suffix(), Tag: "talk", Topic: "%DLQ%" + c.mq.Config.ConsumerGroup}
	first := b.Proc.Process(ctx, d)
	require.Equal(t, consumer.Ack, first.Action)
	require.Contains(t, first.Reason, "retried as run")
	second := b.Proc.Process(ctx, d)
	require.Equal(t, first.Reason, second.Reason, "the same dead letter resent twice retries once")
	dlqRuns, err := a.Ledger.ListRuns(ctx, ledger.RunFilter{RunKey: dlqEnv[0].RunKey})
	require.NoError(t, err)
	ctl, err := a.Ledger.Control(ctx, dlqRuns[0].ID)
	require.NoError(t, err)
	require.Len(t, ctl.RetriedAs, 1)
	retry, err := a.Ledger.GetRun(ctx, ctl.RetriedAs[0])
	require.NoError(t, err)
	require.Equal(t, "dlq-resend", retry.RequestedBy)
	g = c.waitGroup(a.Ledger, "talk", retry.RunKey, 30*time.Second)
	require.True(t, g.Succeeded(), "%v", g.ByStatus)
	// A plain duplicate of a failed run's message (not from the DLQ) is still acknowledged and skipped.
	d.Topic = c.mq.Config.Topic
	require.Equal(t, "already failed", b.Proc.Process(ctx, d).Reason)
}
