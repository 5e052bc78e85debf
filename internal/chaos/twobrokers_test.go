package chaos_test

import (
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/mq"
)

// twoOverdue is ticker.overdue_after in the two-broker test: how long a scheduled run whose
// timer message sits on a dead master waits before the repair pass publishes it again.
const twoOverdue = 5 * time.Second

// Killing one of two broker masters (kill -9) under load: producers route around it, the
// ticker's repair pass republishes the scheduled runs whose timer messages were on it, and
// once it comes back the forced runs it had accepted run too, each exactly once.
func TestKill9OneOfTwoBrokerMasters(t *testing.T) {
	testenv.Integration(t)
	t.Parallel()
	ctx := context.Background()
	rmq, err := chaos.StartRocketMQ(ctx, t.TempDir())
	require.NoError(t, err)
	t.Cleanup(rmq.Kill)
	second, err := rmq.AddMaster(ctx, "chaos-broker-2", t.TempDir())
	require.NoError(t, err)
	t.Cleanup(second.Kill)
	sfx := testenv.Suffix()
	mqc := mq.Config{NameServers: []string{rmq.NameServer}, Topic: "CHAOS2_" + sfx, ConsumerGroup: "chaos2_g_" + sfx,
		ProducerGroup: "chaos2_p_" + sfx, BrokerAddrs: []string{rmq.Broker, second.Broker}, QueueNums: 4,
		SendTimeout: 3 * time.Second}.WithDefaults()
	require.NoError(t, mq.EnsureTopics(ctx, mqc, mqc.Topic, mq.RetryTopic(mqc.ConsumerGroup)))
	waitQueues(t, rmq.NameServer, mqc.Topic, 8)

	tick := chaos.TickKind(0)
	w := newWorld(t, "", &mqc, chaos.Settings{Ticker: true, Misfire: 2 * time.Minute, Overdue: twoOverdue,
		Jobs: `chaos_probe: {max_attempts: 5, timeout: 1m, overlap: allow}
  ` + tick + `: {schedule: "* * * * * *", max_attempts: 5, overlap: allow, params: {sleep_ms: 100}}`})
	nodes := []*chaos.Proc{w.c.Start("a", nil), w.c.Start("b", nil)}
	from := w.ready(2).Add(time.Second)

	stop := make(chan struct{})
	wl := w.startWorkload(250*time.Millisecond, `{"sleep_ms":100}`, stop)
	testenv.Eventually(t, 60*time.Second, func() bool { return len(w.rows(chaos.ProbeKind, "")) >= 8 }, "the workload to run")
	killed := time.Now()
	second.Kill()
	t.Logf("killed master %s (kill -9)", second.Name)

	// Forced runs published after the kill land on the surviving master and run.
	testenv.Eventually(t, 90*time.Second, func() bool {
		var n int
		require.NoError(t, w.pool.QueryRow(ctx, `SELECT count(*) FROM job_runs WHERE job = $1 AND status = 'succeeded'
			AND scheduled_at > $2`, chaos.ProbeKind, killed.Add(2*time.Second)).Scan(&n))
		return n >= 8
	}, "forced runs to flow on the surviving master")
	// Every occurrence due by a few seconds after the kill ran, including those whose timer
	// message is stranded on the dead master: the repair pass republished them.
	until := killed.Add(4 * time.Second)
	sched := w.scheduledDone(tick, from, until, 90*time.Second)
	recovered := time.Since(killed)
	close(stop)
	keys, refused := wl.keys()
	waits := w.startWaits(tick, from, until)
	late := 0
	for _, d := range waits {
		if d > 2*time.Second {
			late++
		}
	}
	t.Logf("every occurrence up to 4 s after the kill ran %s after it; %d of %d occurrences waited > 2 s; max wait %s (overdue_after %s)",
		recovered.Round(time.Millisecond), late, len(waits), waits[len(waits)-1].Round(time.Millisecond), twoOverdue)
	require.LessOrEqual(t, waits[len(waits)-1], twoOverdue+15*time.Second, "the repair pass bounds the wait")
	republished := 0
	for _, n := range nodes {
		republished += strings.Count(n.Log(), "overdue and unclaimed")
	}
	t.Logf("runs republished by the repair pass as overdue: %d", republished)

	// The forced runs the dead master had accepted but not delivered are on its disk: they
	// run when it comes back (kill -9 keeps the page cache, so nothing accepted is lost).
	back := time.Now()
	require.NoError(t, second.Start(ctx))
	t.Logf("master %s restarted in %s", second.Name, time.Since(back).Round(time.Millisecond))
	for _, k := range keys {
		exactlyOnce(t, w.waitDone(chaos.ProbeKind, k, 1, 2*time.Minute))
	}
	// Occurrences republished by repair and delivered again from the restarted master's disk
	// are deduplicated by the claim.
	sched = w.scheduledDone(tick, from, time.Now(), 90*time.Second)
	exactlyOnce(t, sched)
	t.Logf("%d forced runs accepted (%d refused), %d scheduled occurrences: each succeeded exactly once",
		len(keys), refused, len(sched))
	w.noneRunning(until)
	for _, n := range nodes {
		require.True(t, n.Alive(), "node %s survived the broker's death", n.Name)
	}
}

// waitQueues waits until the name server routes topic to want write queues (all masters
// registered it).
func waitQueues(t *testing.T, nameServer, topic string, want int) {
	t.Helper()
	var brokers map[string]int
	testenv.Eventually(t, 2*time.Minute, func() bool {
		// A fresh client each time: one keeps the first route it saw.
		adm, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver([]string{nameServer})))
		require.NoError(t, err)
		defer adm.Close() //nolint:errcheck // best effort on a short-lived client
		qs, err := adm.FetchPublishMessageQueues(context.Background(), topic)
		brokers = map[string]int{}
		for _, q := range qs {
			brokers[q.BrokerName]++
		}
		return err == nil && len(qs) >= want
	}, "%d queues of %s routed (routed: %v)", want, topic, &brokers)
}

// startWaits returns, sorted, how long after its time each occurrence of kind in (from, until]
// started its succeeded attempt.
func (w *world) startWaits(kind string, from, until time.Time) []time.Duration {
	w.t.Helper()
	rows, err := w.pool.Query(context.Background(), `SELECT extract(epoch FROM a.started_at - r.scheduled_at)
		FROM job_runs r JOIN job_attempts a ON a.run_id = r.id AND a.outcome = 'succeeded'
		WHERE r.job = $1 AND r.scheduled_at > $2 AND r.scheduled_at <= $3`, kind, from, until)
	require.NoError(w.t, err)
	defer rows.Close()
	var out []time.Duration
	for rows.Next() {
		var s float64
		require.NoError(w.t, rows.Scan(&s))
		out = append(out, time.Duration(s*float64(time.Second)))
	}
	require.NoError(w.t, rows.Err())
	require.NotEmpty(w.t, out)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
