package ticker

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/mq"
)

// countingPublisher publishes through the real producer and remembers what it sent.
type countingPublisher struct {
	inner *mq.Producer
	mu    sync.Mutex
	sent  map[string]int // run key -> publishes
	ahead map[time.Duration]int
}

func (c *countingPublisher) Send(ctx context.Context, env job.Envelope, at time.Time) (job.Receipt, error) {
	rc, err := c.inner.Send(ctx, env, at)
	if err == nil {
		c.mu.Lock()
		c.sent[env.RunKey]++
		if c.ahead == nil {
			c.ahead = map[time.Duration]int{}
		}
		c.ahead[env.ScheduledAt.Sub(at)]++
		c.mu.Unlock()
	}
	return rc, err
}

// aheads returns how far before scheduled_at each publish asked the broker to deliver.
func (c *countingPublisher) aheads() map[time.Duration]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[time.Duration]int{}
	for k, v := range c.ahead {
		out[k] = v
	}
	return out
}

func (c *countingPublisher) Republish(ctx context.Context, env job.Envelope, turn int) (string, error) {
	id, err := c.inner.Republish(ctx, env, turn)
	if err == nil {
		c.mu.Lock()
		c.sent[env.RunKey]++
		c.mu.Unlock()
	}
	return id, err
}

func (c *countingPublisher) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.sent {
		out[k] = v
	}
	return out
}

func TestLeaseOneTickerPublishesOtherTakesOver(t *testing.T) {
	s := testenv.NewSchema(t)
	m := testenv.NewMQ(t, 4)
	ctx := context.Background()
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	l := ledger.New(s.Pool)
	prod, err := mq.NewProducer(m.Config, "lease-"+testenv.Suffix())
	require.NoError(t, err)
	t.Cleanup(func() { _ = prod.Close() })

	specs := map[string]job.Spec{"probe": job.Spec{Schedule: "* * * * * *"}.WithDefaults()}
	key := time.Now().UnixNano() & 0x7fffffff
	cfg := Config{Interval: 50 * time.Millisecond, Lookahead: 2 * time.Second, MisfireTolerance: time.Second,
		LeaseKey: key, RepairInterval: time.Second}
	pubA := &countingPublisher{inner: prod, sent: map[string]int{}}
	pubB := &countingPublisher{inner: prod, sent: map[string]int{}}
	a, err := New(cfg, "a", specs, l, pubA, NewLease(s.Pool, key, 15*time.Second), testenv.Logger(t), time.Now)
	require.NoError(t, err)
	b, err := New(cfg, "b", specs, l, pubB, NewLease(s.Pool, key, 15*time.Second), testenv.Logger(t), time.Now)
	require.NoError(t, err)

	require.NoError(t, a.Tick(ctx))
	require.NoError(t, b.Tick(ctx))
	require.True(t, a.State().Leader)
	require.False(t, b.State().Leader)
	require.NotEmpty(t, pubA.snapshot(), "the leader publishes the occurrences within its lookahead")
	require.Len(t, pubA.aheads(), 1, "every timer message is due deliver_ahead before its time")
	require.Contains(t, pubA.aheads(), time.Second, "deliver_ahead defaults to 1s")
	require.Empty(t, pubB.snapshot(), "a follower publishes nothing")

	// a stops (its lease goes with it); b takes over and continues where a left off.
	require.NoError(t, a.Start(ctx))
	require.NoError(t, a.Stop(ctx))
	require.False(t, a.State().Leader)
	deadline := time.Now().Add(5 * time.Second)
	for !b.State().Leader && time.Now().Before(deadline) {
		require.NoError(t, b.Tick(ctx))
	}
	require.True(t, b.State().Leader)
	require.NoError(t, b.Start(ctx))
	t.Cleanup(func() { _ = b.Stop(context.Background()) })
	lastA := latestKey(pubA.snapshot())
	testenv.Eventually(t, 10*time.Second, func() bool {
		return latestKey(pubB.snapshot()) > lastA
	}, "the new leader to publish occurrences after the old one's last")

	// Every occurrence was published exactly once across both tickers, with none missing
	// between the first and the last.
	all := map[string]int{}
	for k, v := range pubA.snapshot() {
		all[k] += v
	}
	for k, v := range pubB.snapshot() {
		all[k] += v
	}
	for k, v := range all {
		require.Equal(t, 1, v, "occurrence %s published %d times", k, v)
	}
	runs, err := l.ListRuns(ctx, ledger.RunFilter{Job: "probe", Limit: 1000})
	require.NoError(t, err)
	first, last := runs[0].ScheduledAt, runs[0].ScheduledAt
	for _, r := range runs {
		if r.ScheduledAt.Before(first) {
			first = r.ScheduledAt
		}
		if r.ScheduledAt.After(last) {
			last = r.ScheduledAt
		}
	}
	require.Equal(t, int(last.Sub(first)/time.Second)+1, len(runs), "no second between %s and %s was missed", first, last)
}

func latestKey(m map[string]int) string {
	latest := ""
	for k := range m {
		if k > latest {
			latest = k
		}
	}
	return latest
}

func TestRepairRepublishesOverdueUnclaimedRunOnce(t *testing.T) {
	s := testenv.NewSchema(t)
	m := testenv.NewMQ(t, 2)
	ctx := context.Background()
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	l := ledger.New(s.Pool)
	prod, err := mq.NewProducer(m.Config, "overdue-"+testenv.Suffix())
	require.NoError(t, err)
	t.Cleanup(func() { _ = prod.Close() })

	// The broker took this message an hour ago, but no consumer ever claimed it.
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	env := job.Envelope{Job: "probe", RunKey: job.ScheduleRunKey("probe", at), Trigger: job.TriggerSchedule,
		ScheduledAt: at, Shard: job.Shard{Index: 0, Total: 1}}
	inserted, err := l.RecordScheduled(ctx, env)
	require.NoError(t, err)
	require.True(t, inserted)
	require.NoError(t, l.MarkPublished(ctx, env, job.Receipt{MsgID: "lost-msg"}))
	_, err = s.Pool.Exec(ctx, `UPDATE job_runs SET updated_at = now() - interval '1 hour'`)
	require.NoError(t, err)

	tk, pub := repairTicker(t, s, l, prod, func(c *Config) { c.OverdueAfter = time.Minute })
	require.NoError(t, tk.Tick(ctx))
	require.Equal(t, map[string]int{env.RunKey: 1}, pub.snapshot())
	time.Sleep(20 * time.Millisecond) // let the next tick be a repair tick too
	require.NoError(t, tk.Tick(ctx))
	require.Equal(t, map[string]int{env.RunKey: 1}, pub.snapshot(), "republished once per overdue_after, not every pass")
}

// Runs waiting for a message that will never come are found and
// published again; a run of a job kind that no longer exists is recorded rejected once; a run
// that keeps coming back is given up after max_republish, with an alert, not published forever.
func TestRepairUnsticksRunsAndBoundsRepublishing(t *testing.T) {
	s := testenv.NewSchema(t)
	m := testenv.NewMQ(t, 2)
	ctx := context.Background()
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	l := ledger.New(s.Pool)
	prod, err := mq.NewProducer(m.Config, "stuck-"+testenv.Suffix())
	require.NoError(t, err)
	t.Cleanup(func() { _ = prod.Close() })

	// Rows as a lost, dead-lettered or skipped message leaves them: an interrupted run, a
	// retrying one, and an abandoned run of a kind this build no longer has.
	insert := func(kind, key, status string) int64 {
		var id int64
		require.NoError(t, s.Pool.QueryRow(ctx, `INSERT INTO job_runs (job, run_key, trigger, scheduled_at, params,
			status, attempt, node, updated_at) VALUES ($1, $2, 'manual', now() - interval '2 hours', '{}', $3, 1, 'gone',
			now() - interval '1 hour') RETURNING id`, kind, key, status).Scan(&id))
		return id
	}
	interrupted := insert("probe", "manual:interrupted", "interrupted")
	retrying := insert("probe", "manual:retrying", "retrying")
	removed := insert("removed_kind", "manual:removed", "abandoned")
	fresh := insert("probe", "manual:fresh-retry", "retrying")
	_, err = s.Pool.Exec(ctx, `UPDATE job_runs SET updated_at = now() WHERE id = $1`, fresh)
	require.NoError(t, err)

	alerts := &recAlerts{}
	tk, pub := repairTicker(t, s, l, prod, stuckRepair)
	tk.SetKnown(func(kind string) bool { return kind == "probe" })
	tk.SetAlerter(alerts)
	require.NoError(t, tk.Tick(ctx))
	require.Equal(t, map[string]int{"manual:interrupted": 1, "manual:retrying": 1}, pub.snapshot(),
		"stuck runs republished; a recent retry and a removed kind not")
	status := func(id int64) (st, errText string, republished int) {
		require.NoError(t, s.Pool.QueryRow(ctx, `SELECT status, error, republished FROM job_runs WHERE id = $1`, id).
			Scan(&st, &errText, &republished))
		return
	}
	st, why, _ := status(removed)
	require.Equal(t, "rejected", st)
	require.Contains(t, why, `job kind "removed_kind" no longer exists`)

	// The republished messages never lead anywhere (as when each is rejected, or its node
	// dies every time): each pass past stuck_after publishes again, up to max_republish.
	for pass := 0; pass < 5; pass++ {
		_, err = s.Pool.Exec(ctx, `UPDATE job_runs SET updated_at = now() - interval '1 hour' WHERE id IN ($1, $2)`, interrupted, retrying)
		require.NoError(t, err)
		time.Sleep(20 * time.Millisecond) // the next tick is a repair tick
		require.NoError(t, tk.Tick(ctx))
	}
	require.Equal(t, map[string]int{"manual:interrupted": 3, "manual:retrying": 3}, pub.snapshot())
	for _, id := range []int64{interrupted, retrying} {
		st, why, n := status(id)
		require.Equal(t, "failed", st)
		require.Contains(t, why, "republished 3 times without finishing")
		require.Equal(t, 4, n)
	}
	require.ElementsMatch(t, []int64{interrupted, retrying}, alerts.ids(), "one alert per given-up run")
	var rows int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM job_runs`).Scan(&rows))
	require.Equal(t, 4, rows, "repairs add no rows")
}

// stuckRepair is the repair configuration of the stuck-run tests: overdue after a minute,
// stale after a second, stuck after half an hour, given up after three republishes.
func stuckRepair(c *Config) {
	c.OverdueAfter, c.StaleAfter, c.StuckAfter, c.MaxRepublish = time.Minute, time.Second, 30*time.Minute, 3
}

// repairTicker is a ticker with no schedules of its own whose every tick is also a repair
// pass, publishing through a countingPublisher. adjust sets the keys a test needs; the lease
// key is unique to the test. The ticker is stopped at cleanup.
func repairTicker(t *testing.T, s *testenv.Schema, l *ledger.Ledger, prod *mq.Producer, adjust func(*Config)) (*Ticker, *countingPublisher) {
	t.Helper()
	key := time.Now().UnixNano() & 0x7fffffff
	pub := &countingPublisher{inner: prod, sent: map[string]int{}}
	cfg := Config{Interval: 10 * time.Millisecond, RepairInterval: 10 * time.Millisecond, LeaseKey: key}
	if adjust != nil {
		adjust(&cfg)
	}
	tk, err := New(cfg, "a", map[string]job.Spec{}, l, pub, NewLease(s.Pool, key, 15*time.Second), testenv.Logger(t), time.Now)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tk.Stop(context.Background()) })
	return tk, pub
}

type recAlerts struct {
	mu  sync.Mutex
	got []int64
}

func (r *recAlerts) RunFailed(_ context.Context, _ job.Envelope, runID int64, _ error, _ any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, runID)
}

func (r *recAlerts) ids() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.got...)
}

// A scheduled run whose timer message is on a broker the name server no
// longer routes is published again at the next repair pass, long before overdue_after, on a
// live broker, which the ledger then records; a run on a live broker is left alone.
func TestRepairRepublishesRunsOfAGoneBrokerAtOnce(t *testing.T) {
	s := testenv.NewSchema(t)
	m := testenv.NewMQ(t, 2)
	ctx := context.Background()
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	l := ledger.New(s.Pool)
	prod, err := mq.NewProducer(m.Config, "gone-"+testenv.Suffix())
	require.NoError(t, err)
	t.Cleanup(func() { _ = prod.Close() })

	at := time.Now().Add(20 * time.Second).UTC().Truncate(time.Second)
	record := func(kind string, rc func(job.Envelope) job.Receipt) job.Envelope {
		env := job.Envelope{Job: kind, RunKey: job.ScheduleRunKey(kind, at), Trigger: job.TriggerSchedule,
			ScheduledAt: at, Shard: job.Shard{Index: 0, Total: 1}}
		inserted, err := l.RecordScheduled(ctx, env)
		require.NoError(t, err)
		require.True(t, inserted)
		require.NoError(t, l.MarkPublished(ctx, env, rc(env)))
		return env
	}
	var live job.Receipt
	record("probe_live", func(env job.Envelope) job.Receipt {
		testenv.Eventually(t, 30*time.Second, func() bool {
			live, err = prod.Send(ctx, env, at)
			return err == nil
		}, "a send to the new topic: %v", &err)
		return live
	})
	onGone := record("probe_gone", func(job.Envelope) job.Receipt {
		return job.Receipt{MsgID: "stranded", Broker: "gone-" + testenv.Suffix(), Queue: 1}
	})
	_, err = s.Pool.Exec(ctx, `UPDATE job_runs SET created_at = now() - interval '1 minute'`)
	require.NoError(t, err)

	tk, pub := repairTicker(t, s, l, prod, nil)
	tk.SetBrokerWatch(mq.NewBrokerWatch(m.Config, Config{}.WithDefaults().BrokerGoneAfter, time.Now))
	require.NoError(t, tk.Tick(ctx))
	require.Equal(t, map[string]int{onGone.RunKey: 1}, pub.snapshot(), "only the gone broker's run, at once")

	runs, err := l.ListRuns(ctx, ledger.RunFilter{Job: onGone.Job})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	require.Equal(t, ledger.StatusScheduled, runs[0].Status)
	require.NotEqual(t, "stranded", runs[0].MsgID)
	var broker string
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT msg_broker FROM job_runs WHERE id = $1`, runs[0].ID).Scan(&broker))
	require.Equal(t, live.Broker, broker, "the new message's broker is recorded")

	time.Sleep(20 * time.Millisecond) // let the next tick be a repair tick too
	require.NoError(t, tk.Tick(ctx))
	require.Equal(t, map[string]int{onGone.RunKey: 1}, pub.snapshot(), "published again once, not every pass")
}
