package app

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/alert"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// TestFailedRunRaisesOneAlert runs a node whose handler fails: the run ends failed after its
// retry, one webhook POST and one email go out, and a second run failing the same way alerts
// again: only repeats of one run are de-duplicated.
func TestFailedRunRaisesOneAlert(t *testing.T) {
	c := newCluster(t, `  probe: {max_attempts: 2}`)
	hook := testenv.NewWebhookSink(t)
	sink := testenv.NewSMTPSink(t)
	cfg := c.cfg("a")
	off := false
	cfg.Ticker.Enabled = &off
	cfg.Alerts = alert.Config{WebhookURL: hook.URL, SMTP: alert.SMTPConfig{Host: sink.Host, Port: sink.Port,
		From: "jobs@chat.example", To: []string{"oncall@chat.example"}}}.WithDefaults()
	n := &Node{Cfg: cfg, Log: testenv.Logger(t).With("node", "a"), Instance: "a-" + testenv.Suffix(),
		ExtraRegister: func(r *job.Registry) { job.Register(r, &probe{kind: "probe", node: "a", rec: c.rec}) }}
	require.NoError(t, n.Start(context.Background()))
	t.Cleanup(func() { _ = n.Stop(context.Background()) })
	ctx := context.Background()
	p := c.producer()

	first := manual("probe", "manual:alert-"+testenv.Suffix(), 1, `{"fail":true}`)
	c.publish(p, first...)
	g := c.waitGroup(n.Ledger, "probe", first[0].RunKey, 60*time.Second)
	require.Equal(t, 1, g.ByStatus[ledger.StatusFailed])
	testenv.Eventually(t, 30*time.Second, func() bool { return len(hook.Bodies()) == 1 && len(sink.Messages()) == 1 },
		"one webhook POST and one email (got %d, %d)", len(hook.Bodies()), len(sink.Messages()))
	var a alert.Alert
	require.NoError(t, json.Unmarshal(hook.Bodies()[0], &a))
	require.Equal(t, "probe", a.Job)
	require.Equal(t, first[0].RunKey, a.RunKey)
	require.Equal(t, "a", a.Node)
	require.Contains(t, a.Error, "probe asked to fail")
	require.JSONEq(t, `{"attempt":2}`, string(a.Result))
	require.Zero(t, a.Suppressed, "the retried first attempt raised no alert of its own")

	suppressed := func() int64 {
		var s int64
		require.NoError(t, n.Pool.QueryRow(ctx, `SELECT COALESCE(sum(suppressed), 0) FROM job_alerts WHERE job = 'probe'`).Scan(&s))
		return s
	}
	require.Zero(t, suppressed())

	// The same failure in another run is a new alert.
	second := manual("probe", "manual:alert-"+testenv.Suffix(), 1, `{"fail":true}`)
	c.publish(p, second...)
	require.Equal(t, 1, c.waitGroup(n.Ledger, "probe", second[0].RunKey, 60*time.Second).ByStatus[ledger.StatusFailed])
	testenv.Eventually(t, 30*time.Second, func() bool { return len(hook.Bodies()) == 2 && len(sink.Messages()) == 2 },
		"a second webhook POST and email for the second run (got %d, %d)", len(hook.Bodies()), len(sink.Messages()))
	require.NoError(t, json.Unmarshal(hook.Bodies()[1], &a))
	require.Equal(t, second[0].RunKey, a.RunKey)
	require.Zero(t, suppressed())
}
