package peers_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
)

// TickArgs is River's job fired every second; N tells the periodic jobs apart.
type TickArgs struct {
	N int `json:"n"`
}

// Kind names the job for River.
func (TickArgs) Kind() string { return "peers_tick" }

// TickWorker records when its handler starts against the fire time River gave the job
// (the periodic enqueuer sets scheduled_at to the schedule's time).
type TickWorker struct {
	river.WorkerDefaults[TickArgs]
	d *delays
}

// Work records the start.
func (w *TickWorker) Work(_ context.Context, j *river.Job[TickArgs]) error {
	w.d.add(strconv.FormatInt(j.ID, 10), j.ScheduledAt, time.Now())
	return nil
}

// riverPrecision runs tickJobs River periodic jobs every whole second on one client tuned as
// for dispatch (MaxWorkers 1000, FetchCooldown 1 ms, FetchPollInterval 20 ms); under load the
// same client works loadRate no-op jobs per second inserted in batches of 50.
func riverPrecision(b *testing.B, underLoad bool) {
	pool := riverPool(b)
	ctx := context.Background()
	for b.Loop() {
		d := newDelays()
		reg := river.NewWorkers()
		river.AddWorker(reg, &NoopWorker{})
		river.AddWorker(reg, &TickWorker{d: d})
		var periodic []*river.PeriodicJob
		for i := range tickJobs {
			periodic = append(periodic, river.NewPeriodicJob(everySecond{},
				func() (river.JobArgs, *river.InsertOpts) { return TickArgs{N: i}, nil }, nil))
		}
		client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
			Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1000}},
			FetchCooldown:     time.Millisecond,
			FetchPollInterval: 20 * time.Millisecond,
			PeriodicJobs:      periodic,
			Workers:           reg,
			Logger:            quietLogger(),
		})
		require.NoError(b, err)
		require.NoError(b, client.Start(ctx))
		// Periodic jobs run on the elected leader only; wait for the first fires.
		testenv.Eventually(b, time.Minute, func() bool {
			var k int
			require.NoError(b, pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'peers_tick'
				AND state = 'completed'`).Scan(&k))
			return k >= tickJobs
		}, "River's periodic jobs to fire")
		var ld *load
		if underLoad {
			ld = startLoad(loadRate(b), 8, 50, func(ctx context.Context, _ int64, n int) error {
				batch := make([]river.InsertManyParams, n)
				for i := range batch {
					batch[i] = river.InsertManyParams{Args: NoopArgs{}}
				}
				_, err := client.InsertManyFast(ctx, batch)
				return err
			})
			time.Sleep(5 * time.Second)
		}
		from := time.Now().Add(2 * time.Second).Truncate(time.Second)
		to := from.Add(precisionFires / tickJobs * time.Second)
		d.window(from, to)
		time.Sleep(time.Until(to))
		n := waitFires(d.count, precisionFires, 60*time.Second)
		if underLoad {
			offered := ld.stop(b)
			var done int
			require.NoError(b, pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'peers_noop'
				AND state = 'completed' AND finalized_at >= $1 AND finalized_at < $2`, from, to).Scan(&done))
			b.ReportMetric(offered, "offered/s")
			b.ReportMetric(float64(done)/to.Sub(from).Seconds(), "forced_done/s")
			b.ReportMetric(float64(ld.failed.Load()), "send_errors")
		}
		reportDelays(b, d.sorted(), precisionFires-n)
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		require.NoError(b, client.Stop(stopCtx))
		cancel()
	}
}

// asynqPrecision registers tickJobs "@every 1s" entries with Asynq's Scheduler (robfig cron:
// whole seconds) and serves them with one server (Concurrency 256; TaskCheckInterval
// taskCheck, 0 for Asynq's default 1 s). The scheduler does not tell the handler its fire
// time; PostEnqueueFunc records the second the enqueue happened in, which is the fire time
// as long as the scheduler enqueues less than a second late (enqueue_lag_max_ms says).
func asynqPrecision(b *testing.B, underLoad bool, taskCheck time.Duration) {
	testenv.Integration(b)
	redis := asynq.RedisClientOpt{Addr: testenv.RedisAddr()}
	queue := "peers-prec-" + testenv.Suffix()
	b.Cleanup(func() { dropAsynqQueue(b, redis, queue) })
	client := asynq.NewClient(redis)
	b.Cleanup(func() { _ = client.Close() })
	for b.Loop() {
		var fires, starts sync.Map // task id -> time.Time
		var lagMax atomic.Int64
		sched := asynq.NewScheduler(redis, &asynq.SchedulerOpts{LogLevel: asynq.ErrorLevel,
			PostEnqueueFunc: func(info *asynq.TaskInfo, err error) {
				if err != nil {
					return
				}
				now := time.Now()
				fire := now.Truncate(time.Second)
				fires.Store(info.ID, fire)
				if lag := int64(now.Sub(fire)); lag > lagMax.Load() {
					lagMax.Store(lag)
				}
			}})
		for i := range tickJobs {
			_, err := sched.Register("@every 1s", asynq.NewTask("peers_tick", []byte(strconv.Itoa(i))), asynq.Queue(queue))
			require.NoError(b, err)
		}
		var noops atomic.Int64
		mux := asynq.NewServeMux()
		mux.HandleFunc("peers_tick", func(ctx context.Context, _ *asynq.Task) error {
			now := time.Now()
			id, _ := asynq.GetTaskID(ctx)
			starts.Store(id, now)
			return nil
		})
		mux.HandleFunc("peers_noop", func(context.Context, *asynq.Task) error {
			noops.Add(1)
			return nil
		})
		srv := asynq.NewServer(redis, asynq.Config{Concurrency: 256, Queues: map[string]int{queue: 1},
			TaskCheckInterval: taskCheck, LogLevel: asynq.ErrorLevel})
		require.NoError(b, srv.Start(mux))
		require.NoError(b, sched.Start())
		var from, to time.Time
		window := func() []time.Duration {
			var out []time.Duration
			fires.Range(func(id, fire any) bool {
				f := fire.(time.Time)
				if f.Before(from) || !f.Before(to) {
					return true
				}
				if s, ok := starts.Load(id); ok {
					out = append(out, s.(time.Time).Sub(f))
				}
				return true
			})
			return out
		}
		var ld *load
		if underLoad {
			ld = startLoad(loadRate(b), 16, 1, func(ctx context.Context, _ int64, _ int) error {
				// Each outcome recorded (a completed task), kept 10 s: 5,000/s for an hour would
				// not fit the shared Redis (maxmemory 256 MB).
				_, err := client.EnqueueContext(ctx, asynq.NewTask("peers_noop", nil), asynq.Queue(queue),
					asynq.Retention(10*time.Second), asynq.MaxRetry(0))
				return err
			})
			time.Sleep(5 * time.Second)
		} else {
			time.Sleep(3 * time.Second)
		}
		from = time.Now().Add(2 * time.Second).Truncate(time.Second)
		to = from.Add(precisionFires / tickJobs * time.Second)
		time.Sleep(time.Until(from))
		noopsFrom := noops.Load()
		time.Sleep(time.Until(to))
		noopsTo := noops.Load()
		n := waitFires(func() int { return len(window()) }, precisionFires, 60*time.Second)
		if underLoad {
			offered := ld.stop(b)
			b.ReportMetric(offered, "offered/s")
			b.ReportMetric(float64(noopsTo-noopsFrom)/to.Sub(from).Seconds(), "forced_done/s")
			b.ReportMetric(float64(ld.failed.Load()), "send_errors")
		}
		b.ReportMetric(ms(time.Duration(lagMax.Load())), "enqueue_lag_max_ms")
		got := window()
		slices.Sort(got)
		reportDelays(b, got, precisionFires-n)
		sched.Shutdown()
		srv.Shutdown()
	}
}
