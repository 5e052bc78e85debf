package chaos_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/filegc"
	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/mq"
)

// twoGoneAfter is ticker.broker_gone_after in the two-broker test: the service's default.
// overdue_after stays at its default too (10 m), so any bound the test sees comes from the
// ledger knowing which broker holds each timer message.
const twoGoneAfter = 30 * time.Second

// twoGCFiles is how many ref_count=0 files the test's file service reports, one event every
// 200 ms, before and after the kill.
const twoGCFiles = 150

// loadedLeaderSlack is what the stranded runs' wait may exceed broker_gone_after by. Idle, the
// waits are under 13 s past the kill or freeze (BENCHMARKS.md); on a box at load 46-55 the
// leader's loop, which runs the repair pass, once ran 77 s behind. The point the tests hold
// is that the wait comes from broker_gone_after, far below overdue_after's 10 minutes.
const loadedLeaderSlack = 90 * time.Second

// Kill -9 of one of two broker masters under load (a job every second,
// forced runs every 250 ms, file GC events every 200 ms). Producers route around it; the
// repair pass sees the broker leave the route and publishes the scheduled runs whose timer
// messages it held again at once; when it comes back, the forced runs and GC events it had
// accepted are processed, and its copies of the republished runs are acknowledged as
// duplicates. Every run and occurrence runs exactly once, every GC event is carried out.
func TestKill9OneOfTwoBrokerMasters(t *testing.T) {
	testenv.Integration(t)
	t.Parallel()
	ctx := context.Background()
	rmq, second, mqc := twoMasters(t)
	sfx := testenv.Suffix()
	gcTopic, gcGroup := "CHAOS2F_"+sfx, "chaos2f_g_"+sfx
	require.NoError(t, mq.EnsureGroupTopics(ctx, mqc, gcGroup, gcTopic))
	waitQueues(t, rmq.NameServer, gcTopic, 8)

	tick := chaos.TickKind(0)
	bucket := testenv.NewBucket(t)
	w := newWorld(t, "", &mqc, chaos.Settings{Ticker: true, Misfire: 2 * time.Minute, Lookahead: 30 * time.Second,
		BrokerGoneAfter: twoGoneAfter,
		Jobs: `chaos_probe: {max_attempts: 5, timeout: 1m, overlap: allow}
  ` + tick + `: {schedule: "* * * * * *", max_attempts: 5, overlap: allow, params: {sleep_ms: 100}}`,
		Extra: fmt.Sprintf("s3: {endpoint: %q, access_key: %q, secret_key: %q}\nfilegc: {enabled: true, topic: %s, group: %s, grace: 1s}\n",
			testenv.S3Endpoint(), testenv.S3AccessKey(), testenv.S3SecretKey(), gcTopic, gcGroup)})
	applyChatSchema(t, w.pool)
	files := seedGCFiles(t, w.pool, bucket, twoGCFiles)
	nodes := []*chaos.Proc{w.c.Start("a", nil), w.c.Start("b", nil)}
	from := w.ready(2).Add(time.Second)

	stop := make(chan struct{})
	wl := w.startWorkload(250*time.Millisecond, `{"sleep_ms":100}`, stop)
	gc := w.startGCEvents(gcTopic, bucket.Name, files, 200*time.Millisecond)
	testenv.Eventually(t, 60*time.Second, func() bool { return len(w.rows(chaos.ProbeKind, "")) >= 8 }, "the workload to run")
	testenv.Eventually(t, 60*time.Second, func() bool { return gcRowsLeft(t, w.pool, files) < len(files)-10 }, "GC events to be carried out")

	// The occurrences whose timer messages the second master holds right now, published up to
	// lookahead (30 s) ahead: they are stranded by the kill.
	stranded := w.onBroker(tick, second.Name)
	ahead := w.publishedAhead(tick)
	killed := time.Now()
	second.Kill()
	t.Logf("killed master %s (kill -9); %d scheduled occurrences had their timer message on it; the ticker had published %s ahead (lookahead 30 s)",
		second.Name, len(stranded), ahead.Round(time.Millisecond))
	require.NotEmpty(t, stranded, "the placement spreads timer messages over both masters")

	// Forced runs published after the kill land on the surviving master and run.
	testenv.Eventually(t, 90*time.Second, func() bool {
		var n int
		require.NoError(t, w.pool.QueryRow(ctx, `SELECT count(*) FROM job_runs WHERE job = $1 AND status = 'succeeded'
			AND scheduled_at > $2`, chaos.ProbeKind, killed.Add(2*time.Second)).Scan(&n))
		return n >= 8
	}, "forced runs to flow on the surviving master")
	// Every occurrence up to the last stranded one ran, the stranded ones too, long before
	// overdue_after: the repair pass saw their broker leave.
	last := stranded[len(stranded)-1].at
	until := last.Add(2 * time.Second)
	sched := w.scheduledDone(tick, from, until, 3*time.Minute)
	recovered := time.Since(killed)
	waits, afterKill := w.strandedWaits(stranded, killed)
	t.Logf("stranded occurrences (%d, due %s..%s after the kill): wait from their time to their start p50 %s, max %s; "+
		"latest start after the kill or their time, whichever is later: %s; every occurrence up to the last stranded one ran %s after the kill "+
		"(broker_gone_after %s, overdue_after default 10m)",
		len(waits), stranded[0].at.Sub(killed).Round(time.Millisecond), last.Sub(killed).Round(time.Millisecond),
		waits[len(waits)/2].Round(time.Millisecond), waits[len(waits)-1].Round(time.Millisecond),
		afterKill.Round(time.Millisecond), recovered.Round(time.Millisecond), twoGoneAfter)
	require.LessOrEqual(t, waits[len(waits)-1], twoGoneAfter+loadedLeaderSlack, "broker_gone_after, not overdue_after (10m), bounds the wait")
	seen := brokerLeftAt(t, nodes)
	t.Logf("the repair pass saw the broker leave %s after the kill", seen.Sub(killed).Round(time.Millisecond))
	for _, n := range nodes {
		require.NotContains(t, n.Log(), "overdue and unclaimed", "nothing waited for overdue_after")
	}
	close(stop)
	keys, refused := wl.keys()
	gcAccepted, gcRefused := gc.wait()

	t.Logf("%d of %d GC files still waiting for their events (on the dead master) before its restart",
		gcRowsLeft(t, w.pool, files), len(files))

	// What the dead master accepted is on its disk (kill -9 keeps the page cache): the forced
	// runs and GC events run when it comes back, and its stranded timer messages are delivered
	// too, late, and acknowledged as duplicates.
	back := time.Now()
	require.NoError(t, second.Start(ctx))
	t.Logf("master %s restarted in %s", second.Name, time.Since(back).Round(time.Millisecond))
	for _, k := range keys {
		exactlyOnce(t, w.waitDone(chaos.ProbeKind, k, 1, 2*time.Minute))
	}
	sched = w.scheduledDone(tick, from, time.Now(), 90*time.Second)
	exactlyOnce(t, sched)
	testenv.Eventually(t, 2*time.Minute, func() bool { return gcRowsLeft(t, w.pool, files) == 0 }, "every GC event to be carried out")
	gcCollected(t, w.pool, bucket, files)
	dups := waitDuplicatesAcked(t, nodes, stranded)
	t.Logf("%d forced runs accepted (%d refused), %d scheduled occurrences: each succeeded exactly once; "+
		"%d GC events accepted (%d sends refused and retried): every file collected once; "+
		"%d of %d stranded timer messages came back and were acknowledged as duplicates",
		len(keys), refused, len(sched), gcAccepted, gcRefused, dups, len(stranded))
	w.noneRunning(until)
	for _, n := range nodes {
		require.True(t, n.Alive(), "node %s survived the broker's death", n.Name)
	}
}

// twoMasters starts a private name server with two broker masters and a job topic and a
// schedule topic (4 queues on each) and their groups on both.
func twoMasters(t *testing.T) (*chaos.RocketMQ, *chaos.Master, mq.Config) {
	t.Helper()
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
	require.NoError(t, mq.EnsureTopics(ctx, mqc, mqc.Topic, mq.RetryTopic(mqc.ConsumerGroup),
		mqc.ScheduleTopic, mq.RetryTopic(mqc.ScheduleGroup())))
	waitQueues(t, rmq.NameServer, mqc.Topic, 8)
	// The ticker's fires go to the schedule topic: routed on both masters before it starts.
	waitQueues(t, rmq.NameServer, mqc.ScheduleTopic, 8)
	return rmq, second, mqc
}

// frozenGoneAfter is ticker.broker_gone_after in the frozen-master test: shorter than the
// default so the test is short, and far below the name server's two-minute expiry, so the
// silence rule is what finds the broker gone.
const frozenGoneAfter = 10 * time.Second

// A master frozen with SIGSTOP stays in the name server's route (its connections stay open)
// while it answers nothing: the watch finds it gone after broker_gone_after of silence, the
// repair pass publishes its scheduled runs again on the other master, and producers stop
// placing messages on it. When it thaws, its late copies are acknowledged as duplicates, and
// every run and occurrence has run exactly once.
func TestFrozenBrokerMasterIsGoneAfterBrokerGoneAfter(t *testing.T) {
	testenv.Integration(t)
	t.Parallel()
	_, second, mqc := twoMasters(t)
	tick := chaos.TickKind(0)
	w := newWorld(t, "", &mqc, chaos.Settings{Ticker: true, Misfire: 2 * time.Minute, Lookahead: 30 * time.Second,
		BrokerGoneAfter: frozenGoneAfter,
		Jobs: `chaos_probe: {max_attempts: 5, timeout: 1m, overlap: allow}
  ` + tick + `: {schedule: "* * * * * *", max_attempts: 5, overlap: allow, params: {sleep_ms: 100}}`})
	nodes := []*chaos.Proc{w.c.Start("a", nil), w.c.Start("b", nil)}
	from := w.ready(2).Add(time.Second)
	stop := make(chan struct{})
	wl := w.startWorkload(250*time.Millisecond, `{"sleep_ms":100}`, stop)
	testenv.Eventually(t, 60*time.Second, func() bool { return len(w.rows(chaos.ProbeKind, "")) >= 8 }, "the workload to run")

	stranded := w.onBroker(tick, second.Name)
	frozen := time.Now()
	require.NoError(t, second.Freeze())
	thawed := false
	t.Cleanup(func() {
		if !thawed {
			_ = second.Thaw()
		}
	})
	t.Logf("froze master %s (SIGSTOP); %d scheduled occurrences had their timer message on it", second.Name, len(stranded))
	require.NotEmpty(t, stranded, "the placement spreads timer messages over both masters")

	last := stranded[len(stranded)-1].at
	until := last.Add(2 * time.Second)
	sched := w.scheduledDone(tick, from, until, 3*time.Minute)
	waits, afterFreeze := w.strandedWaits(stranded, frozen)
	seen := brokerLeftAt(t, nodes)
	t.Logf("the repair pass found the frozen broker gone %s after the freeze (broker_gone_after %s); stranded occurrences "+
		"(%d, due %s..%s after the freeze): wait p50 %s, max %s; latest start after the freeze or their time: %s",
		seen.Sub(frozen).Round(time.Millisecond), frozenGoneAfter, len(waits),
		stranded[0].at.Sub(frozen).Round(time.Millisecond), last.Sub(frozen).Round(time.Millisecond),
		waits[len(waits)/2].Round(time.Millisecond), waits[len(waits)-1].Round(time.Millisecond), afterFreeze.Round(time.Millisecond))
	require.GreaterOrEqual(t, seen.Sub(frozen), frozenGoneAfter-time.Second, "a silent broker is gone only after broker_gone_after")
	require.LessOrEqual(t, waits[len(waits)-1], frozenGoneAfter+loadedLeaderSlack, "broker_gone_after, not overdue_after (10m), bounds the wait")
	close(stop)
	keys, refused := wl.keys()

	require.NoError(t, second.Thaw())
	thawed = true
	for _, k := range keys {
		exactlyOnce(t, w.waitDone(chaos.ProbeKind, k, 1, 2*time.Minute))
	}
	sched = w.scheduledDone(tick, from, time.Now(), 90*time.Second)
	exactlyOnce(t, sched)
	dups := waitDuplicatesAcked(t, nodes, stranded)
	t.Logf("%d forced runs accepted (%d refused), %d scheduled occurrences: each succeeded exactly once; "+
		"%d of %d stranded timer messages delivered after the thaw and acknowledged as duplicates",
		len(keys), refused, len(sched), dups, len(stranded))
	w.noneRunning(until)
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

// strandedRun is a scheduled occurrence whose timer message a broker held.
type strandedRun struct {
	runKey string
	at     time.Time
}

// onBroker returns the unclaimed occurrences of kind whose timer messages broker holds, by
// time.
func (w *world) onBroker(kind, broker string) []strandedRun {
	w.t.Helper()
	rows, err := w.pool.Query(context.Background(), `SELECT run_key, scheduled_at FROM job_runs
		WHERE job = $1 AND status = 'scheduled' AND msg_broker = $2 ORDER BY scheduled_at`, kind, broker)
	require.NoError(w.t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (strandedRun, error) {
		var s strandedRun
		err := r.Scan(&s.runKey, &s.at)
		return s, err
	})
	require.NoError(w.t, err)
	return out
}

// publishedAhead is how far ahead of now the ticker has published kind's occurrences: close to
// lookahead when its loop keeps up, less when a loaded box starves it (and its repair pass).
func (w *world) publishedAhead(kind string) time.Duration {
	w.t.Helper()
	var last time.Time
	require.NoError(w.t, w.pool.QueryRow(context.Background(), `SELECT coalesce(max(scheduled_at), now()) FROM job_runs
		WHERE job = $1 AND msg_id <> ''`, kind).Scan(&last))
	return time.Until(last)
}

// strandedWaits returns how long after its time each stranded run started its succeeded
// attempt (sorted), and the latest start measured from the kill or the run's time, whichever
// came later.
func (w *world) strandedWaits(stranded []strandedRun, killed time.Time) ([]time.Duration, time.Duration) {
	w.t.Helper()
	var waits []time.Duration
	var latest time.Duration
	for _, s := range stranded {
		var started time.Time
		require.NoError(w.t, w.pool.QueryRow(context.Background(), `SELECT a.started_at FROM job_runs r
			JOIN job_attempts a ON a.run_id = r.id AND a.outcome = 'succeeded' WHERE r.run_key = $1`, s.runKey).Scan(&started))
		waits = append(waits, max(0, started.Sub(s.at)))
		ref := s.at
		if killed.After(ref) {
			ref = killed
		}
		latest = max(latest, started.Sub(ref))
	}
	sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
	return waits, latest
}

// brokerLeftAt is when the first node's repair pass logged a broker leaving (its slog time).
func brokerLeftAt(t *testing.T, nodes []*chaos.Proc) time.Time {
	t.Helper()
	var first time.Time
	for _, n := range nodes {
		for _, line := range strings.Split(n.Log(), "\n") {
			if !strings.Contains(line, "broker left the cluster") {
				continue
			}
			f := strings.Fields(line)
			require.NotEmpty(t, f)
			at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time="))
			require.NoError(t, err, line)
			if first.IsZero() || at.Before(first) {
				first = at
			}
		}
	}
	require.False(t, first.IsZero(), "the repair pass saw the broker leave")
	return first
}

// waitDuplicatesAcked waits up to two minutes for every stranded copy to come back and be
// acknowledged as a duplicate, and returns how many did. Whether the broker delivers all of
// them after a crash is the broker's business (its timer wheel recovers from a checkpoint);
// what the service owes is that each one that does come back is acknowledged without running
// (exactlyOnce checks that nothing ran twice), so at least one must be seen.
func waitDuplicatesAcked(t *testing.T, nodes []*chaos.Proc, stranded []strandedRun) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	n := duplicatesAcked(nodes, stranded)
	for n < len(stranded) && time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		n = duplicatesAcked(nodes, stranded)
	}
	require.Positive(t, n, "stranded copies acknowledged as duplicates")
	return n
}

// duplicatesAcked counts the stranded runs whose late copy a node acknowledged as a duplicate.
func duplicatesAcked(nodes []*chaos.Proc, stranded []strandedRun) int {
	var logs strings.Builder
	for _, n := range nodes {
		logs.WriteString(n.Log())
	}
	// By run key: the broker's timer wheel may deliver one message twice.
	acked := map[string]bool{}
	for _, line := range strings.Split(logs.String(), "\n") {
		if !strings.Contains(line, "duplicate delivery of a finished run, acknowledged") {
			continue
		}
		for _, s := range stranded {
			if strings.Contains(line, "run_key="+s.runKey+" ") {
				acked[s.runKey] = true
				break
			}
		}
	}
	return len(acked)
}

// seedGCFiles writes n collectable files (status 2, ref_count 0, long untouched) with their
// objects and returns their ids.
func seedGCFiles(t *testing.T, pool *pgxpool.Pool, b *testenv.Bucket, n int) []int64 {
	t.Helper()
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i + 1)
		b.Put(t, gcKey(ids[i]), 64)
		_, err := pool.Exec(context.Background(), `INSERT INTO file_metadata (id, file_hash, bucket, object_path, size_bytes,
			ref_count, status, updated_at) VALUES ($1, $2, $3, $4, 64, 0, 2, now() - interval '2 days')`,
			ids[i], fmt.Sprintf("h%d", ids[i]), b.Name, gcKey(ids[i]))
		require.NoError(t, err)
	}
	return ids
}

// gcEvents is the test's file service: one ref_count=0 event per file, a send refused by the
// brokers is sent again at the next turn (as the file service's outbox would).
type gcEvents struct {
	done              chan struct{}
	accepted, refused int
}

func (w *world) startGCEvents(topic, bucket string, ids []int64, period time.Duration) *gcEvents {
	g := &gcEvents{done: make(chan struct{})}
	p := w.producer()
	go func() {
		defer close(g.done)
		tk := time.NewTicker(period)
		defer tk.Stop()
		for i := 0; i < len(ids); {
			<-tk.C
			body, err := filegc.Encode(filegc.Event{FileID: ids[i], FileHash: fmt.Sprintf("h%d", ids[i]), Bucket: bucket,
				ObjectPath: gcKey(ids[i]), EventTime: time.Now().Add(-time.Minute).UTC()}, time.Now())
			if err != nil {
				panic(err) // a bad event is the test's bug
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = p.PublishRaw(ctx, topic, filegc.DefaultTag, []string{fmt.Sprint(ids[i])}, body, time.Time{})
			cancel()
			if err != nil {
				g.refused++
				continue
			}
			g.accepted++
			i++
		}
	}()
	return g
}

// wait waits until every event was accepted and returns the counts.
func (g *gcEvents) wait() (accepted, refused int) {
	<-g.done
	return g.accepted, g.refused
}

func gcRowsLeft(t *testing.T, pool *pgxpool.Pool, ids []int64) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM file_metadata WHERE id = ANY($1)`, ids).Scan(&n))
	return n
}

// gcCollected checks that every file's row is gone, logged once, and its object deleted.
func gcCollected(t *testing.T, pool *pgxpool.Pool, b *testenv.Bucket, ids []int64) {
	t.Helper()
	var logged, dup int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(DISTINCT file_id), count(*) - count(DISTINCT file_id)
		FROM gc_log WHERE file_id = ANY($1)`, ids).Scan(&logged, &dup))
	require.Equal(t, len(ids), logged, "files logged")
	require.Zero(t, dup, "files logged twice")
	for _, id := range ids {
		require.False(t, b.Exists(t, gcKey(id)), "object of collected file %d", id)
	}
}
