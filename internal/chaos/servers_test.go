package chaos_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/mq"
)

// workload publishes a forced probe run every period until stop is closed and remembers the
// run keys the broker accepted (SendSync returned OK).
type workload struct {
	mu       sync.Mutex
	accepted []string
	refused  int
	done     chan struct{}
}

func (w *world) startWorkload(period time.Duration, params string, stop <-chan struct{}) *workload {
	wl := &workload{done: make(chan struct{})}
	p := w.producer()
	go func() {
		defer close(wl.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			key := "manual:load-" + testenv.Suffix()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := p.Publish(ctx, forced(chaos.ProbeKind, key, 1, params)[0], time.Time{})
			cancel()
			wl.mu.Lock()
			if err == nil {
				wl.accepted = append(wl.accepted, key)
			} else {
				wl.refused++
			}
			wl.mu.Unlock()
		}
	}()
	return wl
}

func (wl *workload) keys() ([]string, int) {
	<-wl.done
	wl.mu.Lock()
	defer wl.mu.Unlock()
	return wl.accepted, wl.refused
}

// scheduledDone waits until every scheduled occurrence of kind after from and up to until is
// terminal and returns them; they must form an unbroken series, one per second.
func (w *world) scheduledDone(kind string, from, until time.Time, timeout time.Duration) []row {
	w.t.Helper()
	var rs []row
	testenv.Eventually(w.t, timeout, func() bool {
		rs = rs[:0]
		for _, r := range w.rows(kind, "") {
			at, err := time.Parse(time.RFC3339, r.RunKey[len("sched:"+kind+"@"):])
			require.NoError(w.t, err)
			if !at.After(from) || at.After(until) {
				continue
			}
			if r.Status != "succeeded" {
				return false
			}
			rs = append(rs, r)
		}
		return len(rs) > 0
	}, "scheduled %s occurrences up to %s to succeed: %v", kind, until, &rs)
	first, err := time.Parse(time.RFC3339, rs[0].RunKey[len("sched:"+kind+"@"):])
	require.NoError(w.t, err)
	for i, r := range rs {
		require.Equal(w.t, job.ScheduleRunKey(kind, first.Add(time.Duration(i)*time.Second)), r.RunKey,
			"occurrence %d missing", i)
	}
	return rs
}

// Restarting namesrv and broker under a workload: producers and consumers reconnect, and every
// message the broker accepted runs exactly once. A private pair (own ports, own store) so the
// shared broker other tests use stays up.
func TestBrokerRestartLosesNoAcceptedMessage(t *testing.T) {
	testenv.Integration(t)
	t.Parallel()
	ctx := context.Background()
	rmq, err := chaos.StartRocketMQ(ctx, t.TempDir())
	require.NoError(t, err)
	t.Cleanup(rmq.Kill)
	sfx := testenv.Suffix()
	mqc := mq.Config{NameServers: []string{rmq.NameServer}, Topic: "CHAOS_" + sfx, ConsumerGroup: "chaos_g_" + sfx,
		ProducerGroup: "chaos_p_" + sfx, BrokerAddrs: []string{rmq.Broker}, QueueNums: 8, SendTimeout: 3 * time.Second}.WithDefaults()
	require.NoError(t, mq.EnsureTopics(ctx, mqc, mqc.Topic, mqc.ScheduleTopic))
	require.NoError(t, rmq.WaitRoute(ctx, mqc.Topic))
	require.NoError(t, rmq.WaitRoute(ctx, mqc.ScheduleTopic))
	tick := chaos.TickKind(0)
	w := newWorld(t, "", &mqc, chaos.Settings{Ticker: true, Misfire: 2 * time.Minute,
		Jobs: `chaos_probe: {max_attempts: 5, timeout: 1m, overlap: allow}
  ` + tick + `: {schedule: "* * * * * *", max_attempts: 5, overlap: allow, params: {sleep_ms: 200}}`})
	nodes := []*chaos.Proc{w.c.Start("a", nil), w.c.Start("b", nil)}
	from := w.ready(2).Add(time.Second)

	stop := make(chan struct{})
	wl := w.startWorkload(250*time.Millisecond, `{"sleep_ms":300}`, stop)
	testenv.Eventually(t, 60*time.Second, func() bool { return len(w.rows(chaos.ProbeKind, "")) >= 10 }, "the workload to run")
	down := time.Now()
	require.NoError(t, rmq.Restart(ctx))
	t.Logf("namesrv and broker restarted in %s", time.Since(down).Round(time.Millisecond))
	up := time.Now()
	// Keep the load on until forced runs published after the restart succeed again.
	testenv.Eventually(t, 3*time.Minute, func() bool {
		var n int
		require.NoError(t, w.pool.QueryRow(ctx, `SELECT count(*) FROM job_runs WHERE job = $1 AND status = 'succeeded'
			AND scheduled_at > $2`, chaos.ProbeKind, up).Scan(&n))
		return n >= 10
	}, "forced runs to flow again after the restart")
	t.Logf("forced runs flowing again %s after the broker came back", time.Since(up).Round(time.Millisecond))
	close(stop)
	keys, refused := wl.keys()
	end := time.Now()

	for _, k := range keys {
		rs := w.waitDone(chaos.ProbeKind, k, 1, 3*time.Minute)
		exactlyOnce(t, rs)
	}
	sched := w.scheduledDone(tick, from, end, 3*time.Minute)
	exactlyOnce(t, sched)
	t.Logf("%d forced runs accepted (%d refused while the broker was down), %d scheduled occurrences: each succeeded once",
		len(keys), refused, len(sched))
	w.noneRunning(end)
	for _, n := range nodes {
		require.True(t, n.Alive(), "node %s survived the restart", n.Name)
	}
}

// Restarting PostgreSQL under a workload: runs fail and retry, the ticker catches up, nodes
// stay up. A private cluster so other tests' database stays up.
func TestPostgresRestartRunsRetryAndLedgerCatchesUp(t *testing.T) {
	testenv.Integration(t)
	t.Parallel()
	ctx := context.Background()
	pg, err := chaos.StartPostgres(ctx)
	require.NoError(t, err)
	t.Cleanup(pg.Close)
	tick := chaos.TickKind(0)
	w := newWorld(t, pg.DSN, nil, chaos.Settings{Ticker: true, Misfire: 2 * time.Minute,
		Jobs: `chaos_probe: {max_attempts: 8, timeout: 1m, overlap: allow}
  ` + tick + `: {schedule: "* * * * * *", max_attempts: 8, overlap: allow, params: {sleep_ms: 200}}`})
	nodes := []*chaos.Proc{w.c.Start("a", nil), w.c.Start("b", nil)}
	from := w.ready(2).Add(time.Second)

	stop := make(chan struct{})
	wl := w.startWorkload(250*time.Millisecond, `{"sleep_ms":1500,"pg":true}`, stop)
	testenv.Eventually(t, 60*time.Second, func() bool { return len(w.rows(chaos.ProbeKind, "")) >= 10 }, "the workload to run")
	w.pool.Reset()
	down := time.Now()
	require.NoError(t, pg.Stop(ctx, "fast"))
	time.Sleep(5 * time.Second) // the outage itself, not a wait for a result
	require.NoError(t, pg.Start(ctx))
	t.Logf("postgres down for %s", time.Since(down).Round(time.Millisecond))
	for _, n := range nodes {
		require.True(t, n.Alive(), "node %s survived the outage", n.Name)
	}
	up := time.Now()
	testenv.Eventually(t, 2*time.Minute, func() bool {
		var n int
		if err := w.pool.QueryRow(ctx, `SELECT count(*) FROM job_runs WHERE job = $1 AND status = 'succeeded'
			AND scheduled_at > $2`, chaos.ProbeKind, up).Scan(&n); err != nil {
			return false
		}
		return n >= 5
	}, "forced runs to succeed again after the restart")
	close(stop)
	keys, _ := wl.keys()
	end := time.Now()

	retried := 0
	for _, k := range keys {
		rs := w.waitDone(chaos.ProbeKind, k, 1, 3*time.Minute)
		r := rs[0]
		require.Equal(t, "succeeded", r.Status, "%v", r)
		// At least once: an attempt whose handler wrote its effect but could not record the
		// outcome (the ledger was down) is run again, so effects are bounded by attempts.
		require.GreaterOrEqual(t, r.Effects, 1, "%v", r)
		require.LessOrEqual(t, r.Effects, r.Attempt, "%v", r)
		if r.Attempt > 1 {
			retried++
		} else {
			require.Equal(t, 1, r.Effects, "%v", r)
		}
	}
	sched := w.scheduledDone(tick, from, end, 3*time.Minute)
	for _, r := range sched {
		require.LessOrEqual(t, r.Effects, r.Attempt, "%v", r)
	}
	t.Logf("%d forced runs (%d needed more than one attempt), %d scheduled occurrences with none missing",
		len(keys), retried, len(sched))
	require.Positive(t, retried, "the outage made some runs fail and retry")
	w.noneRunning(end)
	for _, n := range nodes {
		require.True(t, n.Alive(), "node %s is still up", n.Name)
	}
}
