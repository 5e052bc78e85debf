package bench_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	rmqconsumer "github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/internal/testenv"
)

// Schedule precision: TickKinds jobs firing every second on two nodes until 1,000 occurrences
// have run; fire time (scheduled_at) to handler start.
func BenchmarkSchedulePrecision(b *testing.B) {
	const want = 1000
	var jobs strings.Builder
	for i := range chaos.TickKinds {
		fmt.Fprintf(&jobs, "  %s: {schedule: \"* * * * * *\", overlap: allow, max_attempts: 1}\n", chaos.TickKind(i))
	}
	// Production ticker and consumer timings (interval 1s, lookahead 30s, early_tolerance 3s).
	r := newRig(b, 8, chaos.Settings{Ticker: true, Interval: time.Second, Lookahead: 30 * time.Second,
		Misfire: 10 * time.Second, Repair: 10 * time.Second, Heartbeat: 5 * time.Second, StaleAfter: 30 * time.Second,
		Jobs: strings.TrimPrefix(jobs.String(), "  ")})
	for b.Loop() {
		r.c.Start("a", nil)
		r.c.Start("b", nil)
		r.serving(2, 8)
		// The first seconds include the nodes' start; measure from a little later.
		from := time.Now().Add(3 * time.Second).Truncate(time.Second)
		ctx := context.Background()
		var delays []time.Duration
		testenv.Eventually(b, 5*time.Minute, func() bool {
			rows, err := r.pool.Query(ctx, `SELECT e.started_at - r.scheduled_at FROM chaos_effects e
				JOIN job_runs r ON r.job = e.job AND r.run_key = e.run_key AND r.shard_index = e.shard
				WHERE r.scheduled_at >= $1 ORDER BY r.scheduled_at LIMIT $2`, from, want)
			require.NoError(b, err)
			delays, err = pgx.CollectRows(rows, pgx.RowTo[time.Duration])
			require.NoError(b, err)
			return len(delays) == want
		}, "%d occurrences to run", want)
		sortDurations(delays)
		b.ReportMetric(ms(percentile(delays, 0.50)), "p50_ms")
		b.ReportMetric(ms(percentile(delays, 0.99)), "p99_ms")
		b.ReportMetric(ms(delays[len(delays)-1]), "max_ms")
		b.ReportMetric(ms(delays[0]), "min_ms")
		b.ReportMetric(float64(len(delays)), "occurrences")
	}
}

// Dispatch throughput: n forced no-op runs queued while the node is frozen, then consumed,
// claimed, run and recorded; then the same n messages read by a bare consumer group with the
// same client settings and no ledger.
func BenchmarkDispatchThroughput(b *testing.B) {
	for _, goroutines := range []int{64, 256, 8} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) { dispatchThroughput(b, goroutines) })
	}
}

func dispatchThroughput(b *testing.B, goroutines int) {
	n := testenv.EnvInt(b, "JOBSVC_BENCH_DISPATCH_N", 10000)
	r := newRig(b, 8, chaos.Settings{Goroutines: goroutines, Jobs: `chaos_noop: {overlap: allow, max_attempts: 1}`})
	ctx := context.Background()
	for b.Loop() {
		node := r.c.Start("a", nil)
		r.serving(1, 8)
		prefix := "manual:tp-" + testenv.Suffix() + "-"
		require.NoError(b, node.Signal(syscall.SIGSTOP))
		publishMany(b, r, prefix, n)
		require.NoError(b, node.Signal(syscall.SIGCONT))
		testenv.Eventually(b, 5*time.Minute, func() bool { return r.count(chaos.NoopKind, prefix, "succeeded") == n },
			"%d no-op runs to succeed", n)
		var first, last time.Time
		var claimStmts, finishStmts int
		// now() is the transaction's start, so the runs of one group-committed statement
		// share started_at (claims) or finished_at (outcomes): distinct values count statements.
		require.NoError(b, r.pool.QueryRow(ctx, `SELECT min(started_at), max(finished_at),
			count(DISTINCT started_at), count(DISTINCT finished_at) FROM job_runs
			WHERE run_key LIKE $1 || '%'`, prefix).Scan(&first, &last, &claimStmts, &finishStmts))
		ledgered := float64(n) / last.Sub(first).Seconds()
		// Stragglers (a message redelivered, a queue served late) stretch the span of the
		// whole set; the rate of the first 99% shows whether the body of the run kept pace.
		var p99 time.Time
		var redone int
		require.NoError(b, r.pool.QueryRow(ctx, `SELECT percentile_disc(0.99) WITHIN GROUP (ORDER BY finished_at),
			count(*) FILTER (WHERE attempt > 1) FROM job_runs WHERE run_key LIKE $1 || '%'`, prefix).Scan(&p99, &redone))
		b.ReportMetric(0.99*float64(n)/p99.Sub(first).Seconds(), "first99%_runs/s")
		b.ReportMetric(float64(redone), "runs_attempted_twice")
		b.ReportMetric(float64(n)/float64(claimStmts), "runs/claim_stmt")
		b.ReportMetric(float64(n)/float64(finishStmts), "runs/finish_stmt")
		node.Kill()

		brokerOnly := bareConsume(b, r, prefix, n, goroutines)
		b.ReportMetric(ledgered, "ledgered_runs/s")
		b.ReportMetric(brokerOnly, "broker_only_msgs/s")
		b.ReportMetric(100*ledgered/brokerOnly, "ratio_%")
	}
}

// publishMany publishes n single-shard no-op runs from 8 goroutines.
func publishMany(b *testing.B, r *rig, prefix string, n int) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				env := forced(chaos.NoopKind, prefix+strconv.FormatInt(i, 10), 1, `{}`)[0]
				if _, err := r.prod.Publish(context.Background(), env, time.Time{}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	require.NoError(b, <-errs)
}

// bareConsume reads the topic from its first offset with a new group, the node's client
// options and a handler that only counts, and returns messages per second between the first
// and the last message with prefix.
func bareConsume(b *testing.B, r *rig, prefix string, n, goroutines int) float64 {
	b.Helper()
	var mu sync.Mutex
	var first, last time.Time
	var got int
	done := make(chan struct{})
	pc, err := rocketmq.NewPushConsumer(
		rmqconsumer.WithNameServer(r.mq.NameServers),
		rmqconsumer.WithGroupName("bare_"+testenv.Suffix()),
		rmqconsumer.WithInstance("bare-"+testenv.Suffix()),
		rmqconsumer.WithConsumerModel(rmqconsumer.Clustering),
		rmqconsumer.WithConsumeFromWhere(rmqconsumer.ConsumeFromFirstOffset),
		rmqconsumer.WithConsumeMessageBatchMaxSize(1),
		rmqconsumer.WithConsumeGoroutineNums(goroutines))
	require.NoError(b, err)
	require.NoError(b, pc.Subscribe(r.mq.Topic, rmqconsumer.MessageSelector{},
		func(_ context.Context, msgs ...*primitive.MessageExt) (rmqconsumer.ConsumeResult, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range msgs {
				if !strings.HasPrefix(m.GetKeys(), prefix) {
					continue
				}
				now := time.Now()
				if got == 0 {
					first = now
				}
				last = now
				got++
				if got == n {
					close(done)
				}
			}
			return rmqconsumer.ConsumeSuccess, nil
		}))
	require.NoError(b, pc.Start())
	defer pc.Shutdown() //nolint:errcheck // measurement is over
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("bare consumer saw %d of %d messages", got, n)
	}
	return float64(n) / last.Sub(first).Seconds()
}

// Scaling: runs of 12 shards, each shard waiting 2 s in pg_sleep (real I/O, holding a
// connection), on 1, 2 and 3 nodes; wall time from publish to the last shard's success.
func BenchmarkScaling(b *testing.B) {
	for _, queues := range []int{12, 8} {
		b.Run(fmt.Sprintf("queues=%d", queues), func(b *testing.B) {
			const runs, shards = 4, 12
			for b.Loop() {
				var base time.Duration
				for nodes := 1; nodes <= 3; nodes++ {
					r := newRig(b, queues, chaos.Settings{Jobs: `chaos_probe: {overlap: allow, max_attempts: 1}
  chaos_noop: {overlap: allow, max_attempts: 1}`})
					procs := make([]*chaos.Proc, nodes)
					for i := range procs {
						procs[i] = r.c.Start(fmt.Sprintf("n%d", i+1), nil)
					}
					r.serving(nodes, queues)
					prefix := "manual:scale-" + testenv.Suffix()
					start := time.Now()
					for i := range runs {
						r.publish(forced(chaos.ProbeKind, fmt.Sprintf("%s-%d", prefix, i), shards, `{"sleep_ms":2000,"pg":true}`)...)
					}
					testenv.Eventually(b, 3*time.Minute, func() bool {
						return r.count(chaos.ProbeKind, prefix, "succeeded") == runs*shards
					}, "scaling runs to finish")
					took := time.Since(start)
					if nodes == 1 {
						base = took
					}
					b.ReportMetric(took.Seconds(), fmt.Sprintf("s_%dnode", nodes))
					if nodes > 1 {
						b.ReportMetric(base.Seconds()/took.Seconds(), fmt.Sprintf("speedup_%dnode", nodes))
					}
					for _, p := range procs {
						p.Kill()
					}
				}
			}
		})
	}
}

// Rebalance: a second node joins a one-node group (time from its process start, and from its
// "node started" line, to its first run), then is killed with -9 (time from the kill until a
// run whose shards cover every queue has fully run on the survivor).
func BenchmarkRebalance(b *testing.B) {
	r := newRig(b, 8, chaos.Settings{Jobs: `chaos_noop: {overlap: allow, max_attempts: 1}`})
	ctx := context.Background()
	for b.Loop() {
		r.c.Start("a", nil)
		r.serving(1, 8)
		stop := make(chan struct{})
		pubDone := make(chan struct{})
		go func() { // a steady trickle of 8-shard runs, so every queue has traffic
			defer close(pubDone)
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				for _, e := range forced(chaos.NoopKind, "manual:trickle-"+testenv.Suffix(), 8, `{}`) {
					_, _ = r.prod.Publish(ctx, e, time.Time{})
				}
			}
		}()
		p, err := chaos.Start(r.c.Bin, r.c.Dir, "b", r.c.Settings)
		require.NoError(b, err)
		require.NoError(b, p.WaitLog("node started", time.Minute))
		ready := time.Now()
		var firstRun time.Time
		testenv.Eventually(b, 2*time.Minute, func() bool {
			return r.pool.QueryRow(ctx, `SELECT min(started_at) FROM job_runs WHERE node = 'b'`).Scan(&firstRun) == nil &&
				!firstRun.IsZero()
		}, "b to serve its first run")
		close(stop)
		<-pubDone
		b.ReportMetric(firstRun.Sub(p.Started).Seconds(), "join_from_exec_s")
		b.ReportMetric(firstRun.Sub(ready).Seconds(), "join_from_ready_s")

		killed := time.Now()
		p.Kill()
		key := "manual:after-kill-" + testenv.Suffix()
		r.publish(forced(chaos.NoopKind, key, 8, `{}`)...)
		testenv.Eventually(b, 3*time.Minute, func() bool { return r.count(chaos.NoopKind, key, "succeeded") == 8 },
			"a run over every queue to finish after the kill")
		var last time.Time
		require.NoError(b, r.pool.QueryRow(ctx, `SELECT max(finished_at) FROM job_runs WHERE run_key = $1`, key).Scan(&last))
		b.ReportMetric(last.Sub(killed).Seconds(), "after_kill9_s")
	}
}

// Idle footprint: RSS and CPU of a node with the default timings and nothing to run, over 30 s.
func BenchmarkIdleFootprint(b *testing.B) {
	r := newRig(b, 8, chaos.Settings{Ticker: true, Interval: time.Second, Lookahead: 30 * time.Second,
		Misfire: 10 * time.Second, Repair: 10 * time.Second, Heartbeat: 5 * time.Second, StaleAfter: 30 * time.Second})
	for b.Loop() {
		p := r.c.Start("idle", nil)
		time.Sleep(5 * time.Second) // settle after start: connections, first rebalance
		t0, c0 := time.Now(), cpuTicks(b, p.Pid())
		time.Sleep(30 * time.Second) // the measurement window
		t1, c1 := time.Now(), cpuTicks(b, p.Pid())
		const clkTck = 100 // USER_HZ on Linux
		cpu := float64(c1-c0) / clkTck / t1.Sub(t0).Seconds()
		b.ReportMetric(100*cpu, "cpu_%")
		b.ReportMetric(float64(rssKiB(b, p.Pid()))/1024, "rss_MiB")
		p.Kill()
	}
}

// cpuTicks is utime+stime of pid in clock ticks.
func cpuTicks(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(b, err)
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, err := strconv.ParseInt(f[11], 10, 64) // field 14 of the whole line
	require.NoError(b, err)
	st, err := strconv.ParseInt(f[12], 10, 64)
	require.NoError(b, err)
	return u + st
}

// rssKiB is VmRSS of pid.
func rssKiB(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(b, err)
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			v, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			require.NoError(b, err)
			return v
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
