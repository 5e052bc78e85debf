package peers_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/mq"
)

// Schedule precision: tickJobs jobs firing every whole second in each system; the figure is
// fire time (the schedule's time: job_runs.scheduled_at, River's periodic job scheduled_at,
// the second Asynq's scheduler fired for) to the handler's own clock reading as it starts,
// over the precisionFires fires of a 50 s window. "load": the same fires while loadRate
// forced no-op jobs per second are offered to the same node / River client / Asynq server.
// All processes share one host, so their clocks are one clock.
func BenchmarkPrecision(b *testing.B) {
	for _, underLoad := range []bool{false, true} {
		name := map[bool]string{false: "idle", true: "load"}[underLoad]
		b.Run("jobservice/"+name, func(b *testing.B) { jobServicePrecision(b, underLoad) })
		b.Run("river/"+name, func(b *testing.B) { riverPrecision(b, underLoad) })
		b.Run("asynq/"+name, func(b *testing.B) { asynqPrecision(b, underLoad, 0) })
	}
	// Asynq polls an empty queue once per TaskCheckInterval (default 1 s): idle, that is its
	// precision. Its tuned figure, for fairness.
	b.Run("asynq/idle_taskcheck=10ms", func(b *testing.B) { asynqPrecision(b, false, 10*time.Millisecond) })
}

// jobServicePrecision runs one node (ticker leader and consumer) with production ticker and
// consumer timings; the fires are chaos_tick_NN probes, whose started_at is the handler's clock.
func jobServicePrecision(b *testing.B, underLoad bool) {
	testenv.Integration(b)
	ctx := context.Background()
	sch, m := jobServiceWorld(b)
	var jobs strings.Builder
	jobs.WriteString("chaos_noop: {overlap: allow, max_attempts: 1}\n")
	for i := range tickJobs {
		fmt.Fprintf(&jobs, "  %s: {schedule: \"* * * * * *\", overlap: allow, max_attempts: 1}\n", chaos.TickKind(i))
	}
	// Production timings: ticker interval 1 s, lookahead 30 s, heartbeat 5 s, stale 30 s.
	s := chaos.Settings{DSN: sch.DSN, MQ: m.Config, LeaseKey: time.Now().UnixNano() & 0x7fffffff,
		Ticker: true, Interval: time.Second, Lookahead: 30 * time.Second, Misfire: 10 * time.Second,
		Repair: 10 * time.Second, Heartbeat: 5 * time.Second, StaleAfter: 30 * time.Second, Jobs: jobs.String()}
	s.MQ.QueueNums = jobServiceQueues
	// PEERS_DELIVER_AHEAD=1ms measures the ticker as it was before deliver_ahead (1 s by default).
	s.DeliverAhead = testenv.EnvDuration(b, "PEERS_DELIVER_AHEAD", 0)
	c := chaos.NewCluster(b, testnode(b), s)
	prod, err := mq.NewProducer(m.Config, "peers-"+testenv.Suffix())
	require.NoError(b, err)
	b.Cleanup(func() { _ = prod.Close() })
	for b.Loop() {
		node := c.Start("a", nil)
		warmJobService(b, sch.Pool, prod, jobServiceQueues)
		var ld *load
		var rss *rssWatch
		prefix := "manual:load-" + testenv.Suffix() + "-"
		if underLoad {
			rss = watchRSS(node.Pid())
			ld = startLoad(loadRate(b), 32, 1, func(ctx context.Context, i int64, _ int) error {
				env := job.Envelope{Job: chaos.NoopKind, RunKey: prefix + strconv.FormatInt(i, 10), Trigger: job.TriggerManual,
					ScheduledAt: time.Now().UTC(), Shard: job.Shard{Total: 1}, Params: []byte(`{}`), RequestedBy: "peers"}
				_, err := prod.Publish(ctx, env, time.Time{})
				return err
			})
			time.Sleep(5 * time.Second) // the backlog, if any, starts forming before the window
		}
		from := time.Now().Add(2 * time.Second).Truncate(time.Second)
		to := from.Add(precisionFires / tickJobs * time.Second)
		var got []time.Duration
		fired := func() int {
			rows, err := sch.Pool.Query(ctx, `SELECT e.started_at - r.scheduled_at FROM chaos_effects e
				JOIN job_runs r ON r.job = e.job AND r.run_key = e.run_key AND r.shard_index = e.shard
				WHERE r.trigger = 'schedule' AND r.scheduled_at >= $1 AND r.scheduled_at < $2`, from, to)
			require.NoError(b, err)
			got, err = pgx.CollectRows(rows, pgx.RowTo[time.Duration])
			require.NoError(b, err)
			return len(got)
		}
		time.Sleep(time.Until(to))
		n := waitFires(fired, precisionFires, 60*time.Second)
		if underLoad {
			offered := ld.stop(b)
			sampled, hwm := rss.peak()
			var done int
			require.NoError(b, sch.Pool.QueryRow(ctx, `SELECT count(*) FROM job_runs WHERE run_key LIKE $1 || '%'
				AND status = 'succeeded' AND finished_at >= $2 AND finished_at < $3`, prefix, from, to).Scan(&done))
			b.ReportMetric(offered, "offered/s")
			b.ReportMetric(float64(done)/to.Sub(from).Seconds(), "forced_done/s")
			b.ReportMetric(float64(ld.failed.Load()), "send_errors")
			b.ReportMetric(sampled, "rss_peak_MiB")
			b.ReportMetric(hwm, "vmhwm_MiB")
		}
		slices.Sort(got)
		reportDelays(b, got, precisionFires-n)
		node.Kill()
	}
}

// warmJobService waits until the fresh group serves every queue (a queue is served once it
// is assigned), so the window measures the schedule, not the group's start.
func warmJobService(b *testing.B, pool interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, prod *mq.Producer, queues int) {
	b.Helper()
	ctx := context.Background()
	testenv.Eventually(b, 2*time.Minute, func() bool {
		prefix := "manual:warm-" + testenv.Suffix() + "-"
		publishForced(b, prod, prefix, queues*2)
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			var k int
			require.NoError(b, pool.QueryRow(ctx, `SELECT count(*) FROM job_runs WHERE run_key LIKE $1 || '%'
				AND status = 'succeeded'`, prefix).Scan(&k))
			if k == queues*2 {
				return true
			}
			time.Sleep(100 * time.Millisecond)
		}
		return false
	}, "the node to serve every queue")
}
