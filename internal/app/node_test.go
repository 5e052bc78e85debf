package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/mq"
)

// probe is a test handler kind that records which node ran which shard.
type probeArgs struct {
	Fail  bool `json:"fail,omitempty"`
	Sleep int  `json:"sleep_ms,omitempty"`
}

type probe struct {
	kind string
	node string
	rec  *recorder
}

func (p *probe) Kind() string { return p.kind }
func (p *probe) Run(ctx context.Context, run *job.Run[probeArgs]) (any, error) {
	p.rec.add(p.node, run.Envelope)
	if run.Args.Sleep > 0 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(run.Args.Sleep) * time.Millisecond):
		}
	}
	if run.Args.Fail {
		return map[string]any{"attempt": run.Attempt}, errors.New("probe asked to fail")
	}
	return map[string]any{"node": p.node, "shard": run.Shard.Index}, nil
}

type recorder struct {
	mu    sync.Mutex
	calls []call
}

type call struct {
	node  string
	env   job.Envelope
	start time.Time
}

func (r *recorder) add(node string, env job.Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{node: node, env: env, start: time.Now()})
}

func (r *recorder) forKey(runKey string) []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []call
	for _, c := range r.calls {
		if c.env.RunKey == runKey {
			out = append(out, c)
		}
	}
	return out
}

type cluster struct {
	t      *testing.T
	schema *testenv.Schema
	mq     *testenv.MQ
	rec    *recorder
	cfg    func(node string) *config.Config
}

func newCluster(t *testing.T, jobsYAML string) *cluster {
	s := testenv.NewSchema(t)
	m := testenv.NewMQ(t, 8)
	leaseKey := time.Now().UnixNano() & 0x7fffffff
	c := &cluster{t: t, schema: s, mq: m, rec: &recorder{}}
	c.cfg = func(node string) *config.Config {
		raw := fmt.Sprintf(`
node: %s
postgres: {dsn: %q}
rocketmq: {name_servers: [%q], broker_addrs: [%q], topic: %s, consumer_group: %s, producer_group: %s}
ticker: {interval: 200ms, lookahead: 5s, misfire_tolerance: 5s, lease_key: %d, repair_interval: 1s}
consumer: {heartbeat_interval: 500ms, stale_after: 3s, drain_timeout: 5s, retry_backoff: 1s, retry_backoff_max: 2s}
jobs:
%s`, node, s.DSN, m.Config.NameServers[0], testenv.Broker(), m.Config.Topic, m.Config.ConsumerGroup, m.Config.ProducerGroup, leaseKey, testenv.OnlyTheseJobs(jobsYAML, handlers.Kinds()))
		cfg, err := ParseConfig([]byte(raw), nil)
		require.NoError(t, err)
		return cfg
	}
	return c
}

// start starts a node named name; it is stopped at cleanup.
func (c *cluster) start(name string, tickerOn bool) *Node {
	cfg := c.cfg(name)
	cfg.Ticker.Enabled = &tickerOn
	n := &Node{Cfg: cfg, Log: testenv.Logger(c.t).With("node", name), Instance: name + "-" + testenv.Suffix(),
		ExtraRegister: func(r *job.Registry) {
			job.Register(r, &probe{kind: "probe", node: name, rec: c.rec})
			job.Register(r, &probe{kind: "probe_tick", node: name, rec: c.rec})
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(c.t, n.Start(ctx))
	c.t.Cleanup(func() { _ = n.Stop(context.Background()) })
	return n
}

func (c *cluster) producer() *mq.Producer {
	p, err := mq.NewProducer(c.mq.Config, "test-"+testenv.Suffix())
	require.NoError(c.t, err)
	c.t.Cleanup(func() { _ = p.Close() })
	return p
}

func manual(jobName, runKey string, shards int, params string) []job.Envelope {
	out := make([]job.Envelope, shards)
	for i := range out {
		out[i] = job.Envelope{Job: jobName, RunKey: runKey, Trigger: job.TriggerManual, ScheduledAt: time.Now().UTC(),
			Shard: job.Shard{Index: i, Total: shards}, Params: []byte(params), RequestedBy: "test"}
	}
	return out
}

func (c *cluster) publish(p *mq.Producer, envs ...job.Envelope) {
	for _, e := range envs {
		_, err := p.Publish(context.Background(), e, time.Time{})
		require.NoError(c.t, err)
	}
}

func (c *cluster) waitGroup(l *ledger.Ledger, jobName, runKey string, timeout time.Duration) ledger.RunGroup {
	var g ledger.RunGroup
	testenv.Eventually(c.t, timeout, func() bool {
		var err error
		g, err = l.RunGroupByKey(context.Background(), jobName, runKey)
		require.NoError(c.t, err)
		return g.Done()
	}, "run %s/%s to finish (so far %v)", jobName, runKey, &g.ByStatus)
	return g
}

func TestScheduledOccurrenceIsDeliveredOnTimeAndRecorded(t *testing.T) {
	c := newCluster(t, `  probe_tick: {schedule: "*/2 * * * * *", max_attempts: 1}`)
	n := c.start("a", true)
	ctx := context.Background()
	var runs []ledger.Run
	testenv.Eventually(t, 45*time.Second, func() bool {
		var err error
		runs, err = n.Ledger.ListRuns(ctx, ledger.RunFilter{Job: "probe_tick", Status: ledger.StatusSucceeded})
		require.NoError(t, err)
		return len(runs) >= 2
	}, "two scheduled probe_tick runs to succeed")
	for _, r := range runs {
		require.Equal(t, "schedule", r.Trigger)
		require.NotEmpty(t, r.MsgID, "the ticker records the message id it published")
		require.False(t, r.StartedAt.Before(r.ScheduledAt), "run %s started %s before its time %s", r.RunKey, r.StartedAt, r.ScheduledAt)
		require.Equal(t, job.ScheduleRunKey("probe_tick", r.ScheduledAt), r.RunKey)
	}
	for _, call := range c.rec.forKey(runs[0].RunKey) {
		require.False(t, call.start.Before(call.env.ScheduledAt), "handler started before scheduled_at")
	}
}

func TestForcedRunDuplicateAndMalformedMessages(t *testing.T) {
	c := newCluster(t, `  probe: {max_attempts: 2}`)
	n := c.start("a", false)
	p := c.producer()
	ctx := context.Background()

	// The same message published twice runs the handler once.
	env := manual("probe", "manual:dup-"+testenv.Suffix(), 1, `{}`)
	c.publish(p, env[0], env[0])
	g := c.waitGroup(n.Ledger, "probe", env[0].RunKey, 30*time.Second)
	require.True(t, g.Succeeded())

	// Malformed and unknown messages are rejected and acknowledged; the node keeps serving.
	bad := [][]byte{[]byte("{not json"), []byte(`{"job":"nope","run_key":"k","trigger":"manual","scheduled_at":"2026-11-26T00:00:00Z","shard":{"index":0,"total":1}}`),
		[]byte(`{"job":"probe","run_key":"k2","trigger":"manual","scheduled_at":"2026-11-26T00:00:00Z","shard":{"index":3,"total":2}}`),
		[]byte(`{"job":"probe","run_key":"k3","trigger":"manual","scheduled_at":"2026-11-26T00:00:00Z","shard":{"index":0,"total":1},"params":{"fail":"yes"}}`)}
	for _, b := range bad {
		_, err := p.PublishRaw(ctx, c.mq.Config.Topic, "probe", nil, b, time.Time{})
		require.NoError(t, err)
	}
	testenv.Eventually(t, 30*time.Second, func() bool {
		runs, err := n.Ledger.ListRuns(ctx, ledger.RunFilter{Status: ledger.StatusRejected})
		require.NoError(t, err)
		return len(runs) == len(bad)
	}, "all malformed messages rejected")
	runs, err := n.Ledger.ListRuns(ctx, ledger.RunFilter{Status: ledger.StatusRejected})
	require.NoError(t, err)
	reasons := ""
	for _, r := range runs {
		require.NotEmpty(t, r.Error)
		reasons += r.Error + "\n"
	}
	require.Contains(t, reasons, "invalid JSON")
	require.Contains(t, reasons, `unknown job "nope"`)
	require.Contains(t, reasons, "shard.index")
	require.Contains(t, reasons, "params")

	after := manual("probe", "manual:after-"+testenv.Suffix(), 1, `{}`)
	c.publish(p, after...)
	require.True(t, c.waitGroup(n.Ledger, "probe", after[0].RunKey, 30*time.Second).Succeeded())
	require.Len(t, c.rec.forKey(env[0].RunKey), 1, "the duplicate message must not run the handler again")
}

func TestHandlerErrorIsRetriedThenFailed(t *testing.T) {
	c := newCluster(t, `  probe: {max_attempts: 2}`)
	n := c.start("a", false)
	env := manual("probe", "manual:fail-"+testenv.Suffix(), 1, `{"fail":true}`)
	c.publish(c.producer(), env...)
	g := c.waitGroup(n.Ledger, "probe", env[0].RunKey, 60*time.Second)
	require.Equal(t, 1, g.ByStatus[ledger.StatusFailed])
	runs, err := n.Ledger.ListRuns(context.Background(), ledger.RunFilter{RunKey: env[0].RunKey})
	require.NoError(t, err)
	require.Equal(t, 2, runs[0].Attempt)
	require.Contains(t, runs[0].Error, "probe asked to fail")
	require.JSONEq(t, `{"attempt":2}`, string(runs[0].Result))
	require.Len(t, c.rec.forKey(env[0].RunKey), 2)
	attempts, err := n.Ledger.Attempts(context.Background(), runs[0].ID)
	require.NoError(t, err)
	require.Equal(t, "retrying", attempts[0].Outcome)
	require.Equal(t, "failed", attempts[1].Outcome)
}

func TestTwoNodesShareTheShardsOfOneRun(t *testing.T) {
	c := newCluster(t, `  probe: {max_attempts: 1}`)
	a := c.start("a", false)
	c.start("b", false)
	p := c.producer()
	// Rebalancing after the second node joins takes a moment; warm up until both serve.
	testenv.Eventually(t, 60*time.Second, func() bool {
		warm := manual("probe", "manual:warm-"+testenv.Suffix(), 8, `{}`)
		c.publish(p, warm...)
		c.waitGroup(a.Ledger, "probe", warm[0].RunKey, 30*time.Second)
		nodes := map[string]bool{}
		for _, call := range c.rec.forKey(warm[0].RunKey) {
			nodes[call.node] = true
		}
		return len(nodes) == 2
	}, "both nodes to take shard messages")

	env := manual("probe", "manual:spread-"+testenv.Suffix(), 16, `{"sleep_ms":50}`)
	c.publish(p, env...)
	g := c.waitGroup(a.Ledger, "probe", env[0].RunKey, 60*time.Second)
	require.True(t, g.Succeeded())
	perNode := map[string]int{}
	for _, call := range c.rec.forKey(env[0].RunKey) {
		perNode[call.node]++
	}
	require.Len(t, perNode, 2, "shards of one run spread over both nodes: %v", perNode)
	require.Equal(t, 16, perNode["a"]+perNode["b"])
}

func TestStopDrainsRunsInFlight(t *testing.T) {
	c := newCluster(t, `  probe: {max_attempts: 3, timeout: 1m}`)
	a := c.start("a", false)
	env := manual("probe", "manual:drain-"+testenv.Suffix(), 1, `{"sleep_ms":1500}`)
	c.publish(c.producer(), env...)
	testenv.Eventually(t, 30*time.Second, func() bool { return a.Proc.InFlight() == 1 }, "the run to start")
	// SIGTERM path: stop taking messages, let the run finish within the drain timeout (5s).
	require.NoError(t, a.Stop(context.Background()))
	l := ledger.New(c.schema.Pool) // the node closed its own pool
	g, err := l.RunGroupByKey(context.Background(), "probe", env[0].RunKey)
	require.NoError(t, err)
	require.True(t, g.Succeeded(), "the run in flight finished before the node stopped: %v", g.ByStatus)
}

func TestStopInterruptsLongRunAndAnotherNodeFinishesIt(t *testing.T) {
	c := newCluster(t, `  probe: {max_attempts: 3, timeout: 1m}`)
	cfg := c.cfg("a")
	cfg.Consumer.DrainTimeout = 500 * time.Millisecond
	off := false
	cfg.Ticker.Enabled = &off
	a := &Node{Cfg: cfg, Log: testenv.Logger(t).With("node", "a"), Instance: "a-" + testenv.Suffix(),
		ExtraRegister: func(r *job.Registry) { job.Register(r, &probe{kind: "probe", node: "a", rec: c.rec}) }}
	require.NoError(t, a.Start(context.Background()))
	env := manual("probe", "manual:interrupt-"+testenv.Suffix(), 1, `{"sleep_ms":4000}`)
	c.publish(c.producer(), env...)
	testenv.Eventually(t, 30*time.Second, func() bool { return a.Proc.InFlight() == 1 }, "the run to start on a")
	require.NoError(t, a.Stop(context.Background()))
	runs, err := ledger.New(c.schema.Pool).ListRuns(context.Background(), ledger.RunFilter{RunKey: env[0].RunKey})
	require.NoError(t, err)
	require.Equal(t, ledger.StatusInterrupted, runs[0].Status, "a run cut short by shutdown is recorded as such")

	// Another node picks the redelivered message up and completes the run.
	b := c.start("b", false)
	g := c.waitGroup(b.Ledger, "probe", env[0].RunKey, 60*time.Second)
	require.True(t, g.Succeeded(), "%v", g.ByStatus)
	attempts, err := b.Ledger.Attempts(context.Background(), runs[0].ID)
	require.NoError(t, err)
	require.Equal(t, "interrupted", attempts[0].Outcome)
	require.Equal(t, "a", attempts[0].Node)
	require.Equal(t, "succeeded", attempts[len(attempts)-1].Outcome)
	require.Equal(t, "b", attempts[len(attempts)-1].Node)
}
