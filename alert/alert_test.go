package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

func TestFingerprint(t *testing.T) {
	t.Parallel()
	same := [][2]string{
		{"deviation 0.12% (1003 vs 1002) above 0.1%", "deviation 0.13% (1004 vs 1002) above 0.1%"},
		{"run sched:x@2026-11-26T03:00:00Z timed out after 10m0s", "run sched:x@2026-11-27T03:00:00Z timed out after 9m59.5s"},
		{"object 0f3a9c2e77d1b4aa missing", "object 9e1b2c3d4e5f6a7b missing"},
		{"request 123e4567-e89b-12d3-a456-426614174000 failed", "request 00000000-0000-0000-0000-000000000001 failed"},
		{"neo4j:  connection\nrefused", "neo4j: connection refused"},
	}
	for _, p := range same {
		require.Equal(t, Fingerprint(errors.New(p[0])), Fingerprint(errors.New(p[1])), p[0])
	}
	require.NotEqual(t, Fingerprint(errors.New("neo4j: connection refused")), Fingerprint(errors.New("postgres: connection refused")))
	// A handler's own fingerprint wins, through any wrapping.
	err := fmt.Errorf("wrapped: %w", job.Discard("gaps", job.WithProblem("gaps:channel 7 missing 4", errors.New("x"))))
	require.Equal(t, "gaps:channel 7 missing 4", Fingerprint(err))
	require.NotEqual(t, DedupeKey("a", "x"), DedupeKey("b", "x"))
	require.True(t, strings.HasPrefix(DedupeKey("msg_gap_check", "x"), "msg_gap_check:"))
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.False(t, Config{}.Enabled())
	require.NoError(t, Config{}.WithDefaults().Validate())
	for key, c := range map[string]Config{
		"webhook_url":   {WebhookURL: "ftp://x"},
		"window":        {WebhookURL: "http://x", Window: time.Second},
		"smtp.from":     {SMTP: SMTPConfig{Host: "mail", From: "not an address", To: []string{"a@b.c"}}},
		"smtp.to":       {SMTP: SMTPConfig{Host: "mail", From: "jobs@b.c"}},
		"smtp.port":     {SMTP: SMTPConfig{Host: "mail", Port: 70000, From: "jobs@b.c", To: []string{"a@b.c"}}},
		"smtp.username": {SMTP: SMTPConfig{Host: "mail", From: "jobs@b.c", To: []string{"a@b.c"}, Password: "x"}},
	} {
		require.ErrorContains(t, c.WithDefaults().Validate(), key)
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type rig struct {
	pool  *testenv.Schema
	hook  *testenv.WebhookSink
	smtp  *testenv.SMTPSink
	clock *clock
}

func newRig(t *testing.T) *rig {
	s := testenv.NewSchema(t)
	require.NoError(t, ledger.Migrate(context.Background(), s.Pool))
	return &rig{pool: s, hook: testenv.NewWebhookSink(t), smtp: testenv.NewSMTPSink(t),
		clock: &clock{t: time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)}}
}

func (r *rig) notifier(t *testing.T, node string) *Notifier {
	n, err := New(Config{WebhookURL: r.hook.URL, Window: 24 * time.Hour, SMTP: SMTPConfig{Host: r.smtp.Host, Port: r.smtp.Port,
		From: "job-service <jobs@chat.example>", To: []string{"oncall@chat.example", "dba@chat.example"}}},
		r.pool.Pool, node, testenv.Logger(t), r.clock.now)
	require.NoError(t, err)
	n.retryDelays = []time.Duration{10 * time.Millisecond, 10 * time.Millisecond}
	return n
}

func failedRun(jobName, runKey string, runID int64, err error, result any, n *Notifier) *Alert {
	env := job.Envelope{Job: jobName, RunKey: runKey, Trigger: job.TriggerSchedule,
		ScheduledAt: time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC), Shard: job.Shard{Total: 1}}
	return n.build(env, runID, err, result)
}

func decode(t *testing.T, b []byte) Alert {
	t.Helper()
	var a Alert
	require.NoError(t, json.Unmarshal(b, &a))
	return a
}

func TestRepeatedFailuresAlertOncePerProblem(t *testing.T) {
	r := newRig(t)
	n := r.notifier(t, "node-a")
	ctx := context.Background()

	// One bad night: the same deviation on four attempts of one run.
	runKey := "sched:graph_consistency@2026-11-26T03:00:00Z"
	for _, msg := range []string{"deviation 0.12% (1003 vs 1002)", "deviation 0.12% (1003 vs 1002)",
		"deviation 0.13% (1004 vs 1002)", "deviation 0.15% (1006 vs 1002)"} {
		require.NoError(t, n.Notify(ctx, failedRun("graph_consistency", runKey, 10, errors.New(msg), map[string]int{"pg": 1003}, n)))
		r.clock.add(time.Hour)
	}
	require.Len(t, r.hook.Bodies(), 1)
	require.Len(t, r.smtp.Messages(), 1)
	a := decode(t, r.hook.Bodies()[0])
	require.Equal(t, "job-service", a.Source)
	require.Equal(t, KindRunFailed, a.Kind)
	require.Equal(t, "graph_consistency", a.Job)
	require.Equal(t, int64(10), a.RunID)
	require.Equal(t, "node-a", a.Node)
	require.Equal(t, "deviation 0.12% (1003 vs 1002)", a.Error)
	require.JSONEq(t, `{"pg":1003}`, string(a.Result))
	require.Equal(t, "deviation #% (# vs #)", a.Fingerprint)
	require.Equal(t, DedupeKey("graph_consistency", "run "+runKey+": deviation #% (# vs #)"), a.DedupeKey)

	m := r.smtp.Messages()[0]
	require.Equal(t, "jobs@chat.example", m.From)
	require.Equal(t, []string{"oncall@chat.example", "dba@chat.example"}, m.To)
	msg, err := mail.ReadMessage(strings.NewReader(m.Data))
	require.NoError(t, err)
	require.Equal(t, "[job-service] graph_consistency failed: deviation 0.12% (1003 vs 1002)", msg.Header.Get("Subject"))
	require.Equal(t, a.DedupeKey, msg.Header.Get("X-Job-Service-Dedupe-Key"))
	body, err := io.ReadAll(msg.Body)
	require.NoError(t, err)
	require.Contains(t, string(body), "deviation 0.12% (1003 vs 1002)")
	require.Contains(t, string(body), "jobctl show 10")

	// A different problem of the same run is a second alert on each channel.
	require.NoError(t, n.Notify(ctx, failedRun("graph_consistency", runKey, 11, errors.New("neo4j: connection refused"), nil, n)))
	require.Len(t, r.hook.Bodies(), 2)
	require.Len(t, r.smtp.Messages(), 2)

	// Handler fingerprints: the same gaps seen by consecutive runs are one problem, a new gap another.
	gaps := func(desc string) error {
		return job.Discard("sequence gaps", job.WithProblem("gaps:"+desc, errors.New(desc)))
	}
	for i := range 3 {
		require.NoError(t, n.Notify(ctx, failedRun("msg_gap_check", fmt.Sprintf("run-%d", i), int64(20+i), gaps("channel 7 missing 4"), nil, n)))
	}
	require.Len(t, r.hook.Bodies(), 3)
	require.NoError(t, n.Notify(ctx, failedRun("msg_gap_check", "run-9", 29, gaps("channel 7 missing 4; channel 8 missing 2"), nil, n)))
	require.Len(t, r.hook.Bodies(), 4)
	require.Len(t, r.smtp.Messages(), 4)

	// After the window the same run's problem alerts again, saying how often it was suppressed.
	r.clock.add(24 * time.Hour)
	require.NoError(t, n.Notify(ctx, failedRun("graph_consistency", runKey, 12, errors.New("deviation 0.2% (1010 vs 1002)"), nil, n)))
	require.Len(t, r.hook.Bodies(), 5)
	require.EqualValues(t, 3, decode(t, r.hook.Bodies()[4]).Suppressed)
	require.Len(t, r.smtp.Messages(), 5)
}

func TestTwoNodesSendOnce(t *testing.T) {
	r := newRig(t)
	a, b := r.notifier(t, "node-a"), r.notifier(t, "node-b")
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 20 {
		n := a
		if i%2 == 1 {
			n = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, n.Notify(ctx, failedRun("file_gc", "k", int64(i), errors.New("s3: access denied"), nil, n)))
		}()
	}
	wg.Wait()
	require.Len(t, r.hook.Bodies(), 1)
	require.Len(t, r.smtp.Messages(), 1)
}

func TestFailedDeliveryIsTriedAgainNextTime(t *testing.T) {
	r := newRig(t)
	n := r.notifier(t, "node-a")
	ctx := context.Background()
	r.hook.FailNext(3) // every attempt of the first delivery
	err := n.Notify(ctx, failedRun("es_forcemerge", "k1", 1, errors.New("cluster red"), nil, n))
	require.ErrorContains(t, err, "webhook")
	require.Empty(t, r.hook.Bodies())
	require.Len(t, r.smtp.Messages(), 1, "email went out regardless")

	// The retry's failure (same problem) delivers the webhook; the email is not repeated.
	require.NoError(t, n.Notify(ctx, failedRun("es_forcemerge", "k1", 1, errors.New("cluster red"), nil, n)))
	require.Len(t, r.hook.Bodies(), 1)
	require.EqualValues(t, 1, decode(t, r.hook.Bodies()[0]).Suppressed, "the undelivered occurrence is counted")
	require.Len(t, r.smtp.Messages(), 1)
}

func TestRunFailedDeliversInBackgroundAndCloseWaits(t *testing.T) {
	r := newRig(t)
	n := r.notifier(t, "node-a")
	env := job.Envelope{Job: "token_blacklist", RunKey: "k", Trigger: job.TriggerManual, ScheduledAt: r.clock.now(), Shard: job.Shard{Total: 1}}
	n.RunFailed(context.Background(), env, 5, errors.New("redis: i/o timeout"), nil)
	require.NoError(t, n.Stop(context.Background()))
	require.Len(t, r.hook.Bodies(), 1)
	require.Len(t, r.smtp.Messages(), 1)
	// After Close, alerts are dropped rather than started.
	n.RunFailed(context.Background(), env, 6, errors.New("another problem"), nil)
	require.Len(t, r.hook.Bodies(), 1)
}

func TestUnreachableChannelsNeverBlockOrPanic(t *testing.T) {
	r := newRig(t)
	n, err := New(Config{WebhookURL: "http://127.0.0.1:1/hook", WebhookTimeout: 200 * time.Millisecond,
		SMTP: SMTPConfig{Host: "127.0.0.1", Port: 1, From: "a@b.c", To: []string{"d@e.f"}, Timeout: time.Second}},
		r.pool.Pool, "n", testenv.Logger(t), time.Now)
	require.NoError(t, err)
	n.retryDelays = nil
	start := time.Now()
	n.RunFailed(context.Background(), job.Envelope{Job: "x", RunKey: "k", Shard: job.Shard{Total: 1}}, 1, errors.New("boom"), nil)
	require.Less(t, time.Since(start), 100*time.Millisecond, "RunFailed returns at once")
	require.NoError(t, n.Stop(context.Background()))
	err = n.Notify(context.Background(), failedRun("x", "k", 1, errors.New("boom"), nil, n))
	require.ErrorContains(t, err, "webhook")
	require.ErrorContains(t, err, "email")
}

// A job that fails the same way every night alerts every night, even when tonight's failure
// comes a few seconds before the window since last night's alert has passed; a repeat of one
// night's run (another node, a republish) still sends once.
func TestEveryRunsFailureAlertsOnce(t *testing.T) {
	r := newRig(t)
	a, b := r.notifier(t, "node-a"), r.notifier(t, "node-b")
	ctx := context.Background()
	night := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	for i := range 3 {
		runKey := job.ScheduleRunKey("pg_partition", night.AddDate(0, 0, i))
		for _, n := range []*Notifier{a, b} {
			require.NoError(t, n.Notify(ctx, failedRun("pg_partition", runKey, int64(100+i),
				errors.New("chat_messages: lock timeout"), nil, n)), "night %d", i)
		}
		r.clock.add(time.Hour)
		require.NoError(t, a.Notify(ctx, failedRun("pg_partition", runKey, int64(100+i),
			errors.New("chat_messages: lock timeout"), nil, a)), "night %d", i)
		require.Len(t, r.hook.Bodies(), i+1, "night %d", i)
		require.Len(t, r.smtp.Messages(), i+1, "night %d", i)
		require.Equal(t, runKey, decode(t, r.hook.Bodies()[i]).RunKey)
		r.clock.add(23*time.Hour - 5*time.Second) // tomorrow's failure is a little earlier
	}
}
