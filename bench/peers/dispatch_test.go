package peers_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/mq"
)

// Dispatch throughput of no-op work whose every outcome is recorded durably, back to back:
// n jobs are queued while the worker is stopped, then worked; the rate is n over the span
// from the first start to the last recorded outcome, read from each system's own record
// (job_runs for job-service, river_job for River, the completed set for Asynq).
func BenchmarkDispatch(b *testing.B) {
	n := testenv.EnvInt(b, "PEERS_N", 50000) // River works 10,000 in 0.25-0.5 s: too short to measure
	for _, g := range []int{64, 256, 1000} {
		b.Run(fmt.Sprintf("jobservice/goroutines=%d", g), func(b *testing.B) { jobService(b, n, g) })
	}
	// River's benchmark tool and docs: a short fetch cooldown and many workers for short jobs.
	b.Run("river/tuned_workers=1000_cooldown=1ms", func(b *testing.B) {
		riverDispatch(b, n, 1000, time.Millisecond, 20*time.Millisecond)
	})
	b.Run("river/tuned_workers=256_cooldown=1ms", func(b *testing.B) {
		riverDispatch(b, n, 256, time.Millisecond, 20*time.Millisecond)
	})
	b.Run("river/defaults_workers=100", func(b *testing.B) { riverDispatch(b, n, 100, 0, 0) })
	b.Run("asynq/concurrency=256", func(b *testing.B) { asynqDispatch(b, n, 256) })
}

// testnode is the shared testnode binary, built once per process.
func testnode(b *testing.B) string {
	b.Helper()
	app.QuietRocketMQ()
	bin, err := chaos.BuiltTestnode()
	require.NoError(b, err)
	return bin
}

// jobServiceQueues is the job topic's queue count in every job-service benchmark here.
const jobServiceQueues = 8

// jobServiceWorld is what a benchmarked job-service node needs: a fresh schema with the
// ledger and the probes' effects table, and a fresh job topic of jobServiceQueues queues.
func jobServiceWorld(b *testing.B) (*testenv.Schema, *testenv.MQ) {
	b.Helper()
	ctx := context.Background()
	sch := testenv.NewSchema(b)
	_, err := sch.Pool.Exec(ctx, chaos.EffectsDDL)
	require.NoError(b, err)
	require.NoError(b, ledger.Migrate(ctx, sch.Pool))
	return sch, testenv.NewMQ(b, jobServiceQueues)
}

func jobService(b *testing.B, n, goroutines int) {
	testenv.Integration(b)
	ctx := context.Background()
	sch, m := jobServiceWorld(b)
	// Production heartbeat timings (configs/production.example.yaml), not the fault tests'
	// fast ones: with stale_after 1.5 s a loaded node stops its own runs when a heartbeat
	// takes 0.5 s to answer, which measures the setting rather than dispatch.
	s := chaos.Settings{DSN: sch.DSN, MQ: m.Config, Goroutines: goroutines, LeaseKey: time.Now().UnixNano() & 0x7fffffff,
		Heartbeat: 5 * time.Second, StaleAfter: 30 * time.Second, Consumer: os.Getenv("PEERS_CONSUMER"),
		Jobs: `chaos_noop: {overlap: allow, max_attempts: 1}`}
	s.MQ.QueueNums = jobServiceQueues
	c := chaos.NewCluster(b, testnode(b), s)
	prod, err := mq.NewProducer(m.Config, "peers-"+testenv.Suffix())
	require.NoError(b, err)
	b.Cleanup(func() { _ = prod.Close() })
	count := func(prefix string) int {
		var k int
		require.NoError(b, sch.Pool.QueryRow(ctx, `SELECT count(*) FROM job_runs WHERE run_key LIKE $1 || '%'
			AND status = 'succeeded'`, prefix).Scan(&k))
		return k
	}
	for b.Loop() {
		node := c.Start("a", nil)
		warmJobService(b, sch.Pool, prod, jobServiceQueues)
		from := sch.TableUpdates(b, "job_runs", 0)
		prefix := "manual:peers-" + testenv.Suffix() + "-"
		require.NoError(b, node.Signal(syscall.SIGSTOP))
		publishForced(b, prod, prefix, n)
		require.NoError(b, node.Signal(syscall.SIGCONT))
		waitDispatched(b, func() bool { return count(prefix) == n }, "%d runs to succeed", n)
		var first, last time.Time
		require.NoError(b, sch.Pool.QueryRow(ctx, `SELECT min(started_at), max(finished_at) FROM job_runs
			WHERE run_key LIKE $1 || '%'`, prefix).Scan(&first, &last))
		b.ReportMetric(float64(n)/last.Sub(first).Seconds(), "jobs/s")
		node.Kill()
		// Each run's outcome is at least one update; hot_upd_% is the share that wrote no index entry.
		b.ReportMetric(sch.TableUpdates(b, "job_runs", from.Updates+int64(n)).HOTPercentSince(from), "hot_upd_%")
	}
}

// waitDispatched waits for cond, checking every half second: each check counts rows of the
// system's own record, and checking more often would take Postgres time from the system being
// measured (the figure itself comes from the record's timestamps, not from when this returns).
func waitDispatched(b *testing.B, cond func() bool, msg string, args ...any) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out after 5m: "+msg, args...)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// publishForced publishes n forced no-op runs from 8 goroutines.
func publishForced(b *testing.B, prod *mq.Producer, prefix string, n int) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				env := job.Envelope{Job: chaos.NoopKind, RunKey: prefix + strconv.FormatInt(i, 10), Trigger: job.TriggerManual,
					ScheduledAt: time.Now().UTC(), Shard: job.Shard{Total: 1}, Params: []byte(`{}`), RequestedBy: "peers"}
				if _, err := prod.Publish(context.Background(), env, time.Time{}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	require.NoError(b, <-errs)
}

// NoopArgs is River's no-op job.
type NoopArgs struct{}

// Kind names the job for River.
func (NoopArgs) Kind() string { return "peers_noop" }

// NoopWorker does nothing; River records its completion.
type NoopWorker struct {
	river.WorkerDefaults[NoopArgs]
}

// Work returns at once.
func (*NoopWorker) Work(context.Context, *river.Job[NoopArgs]) error { return nil }

// riverPool is a fresh schema with River's tables, migrated by River's own migrator.
func riverPool(b *testing.B) *pgxpool.Pool {
	b.Helper()
	testenv.Integration(b)
	sch := testenv.NewSchema(b)
	mig, err := rivermigrate.New(riverpgxv5.New(sch.Pool), nil)
	require.NoError(b, err)
	_, err = mig.Migrate(context.Background(), rivermigrate.DirectionUp, nil)
	require.NoError(b, err)
	return sch.Pool
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// riverDispatch works n River jobs; cooldown and poll 0 keep River's defaults.
func riverDispatch(b *testing.B, n, workers int, cooldown, poll time.Duration) {
	pool := riverPool(b)
	ctx := context.Background()
	for b.Loop() {
		workersReg := river.NewWorkers()
		river.AddWorker(workersReg, &NoopWorker{})
		client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
			Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: workers}},
			FetchCooldown:     cooldown,
			FetchPollInterval: poll,
			Workers:           workersReg,
			Logger:            quietLogger(),
		})
		require.NoError(b, err)
		_, err = pool.Exec(ctx, `TRUNCATE river_job`)
		require.NoError(b, err)
		for done := 0; done < n; {
			batch := make([]river.InsertManyParams, min(1000, n-done))
			for i := range batch {
				batch[i] = river.InsertManyParams{Args: NoopArgs{}}
			}
			_, err := client.InsertManyFast(ctx, batch)
			require.NoError(b, err)
			done += len(batch)
		}
		require.NoError(b, client.Start(ctx))
		waitDispatched(b, func() bool {
			var k int
			require.NoError(b, pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state = 'completed'`).Scan(&k))
			return k == n
		}, "%d River jobs to complete", n)
		var first, last time.Time
		require.NoError(b, pool.QueryRow(ctx, `SELECT min(attempted_at), max(finalized_at) FROM river_job`).Scan(&first, &last))
		b.ReportMetric(float64(n)/last.Sub(first).Seconds(), "jobs/s")
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		require.NoError(b, client.Stop(stopCtx))
		cancel()
	}
}

// asynqDispatch works n Asynq tasks with completed tasks retained (Asynq's record of an
// outcome); the span runs from the first handler start to the moment the completed set
// holds all n.
func asynqDispatch(b *testing.B, n, concurrency int) {
	testenv.Integration(b)
	ctx := context.Background()
	redis := asynq.RedisClientOpt{Addr: testenv.RedisAddr()}
	queue := "peers-" + testenv.Suffix()
	insp := asynq.NewInspector(redis)
	b.Cleanup(func() {
		_ = insp.DeleteQueue(queue, true)
		_ = insp.Close()
	})
	client := asynq.NewClient(redis)
	b.Cleanup(func() { _ = client.Close() })
	for b.Loop() {
		var next atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				for next.Add(1) <= int64(n) {
					if _, err := client.EnqueueContext(ctx, asynq.NewTask("peers_noop", nil), asynq.Queue(queue),
						asynq.Retention(time.Hour), asynq.MaxRetry(0)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		require.NoError(b, <-errs)

		var firstNano atomic.Int64
		mux := asynq.NewServeMux()
		mux.HandleFunc("peers_noop", func(context.Context, *asynq.Task) error {
			firstNano.CompareAndSwap(0, time.Now().UnixNano())
			return nil
		})
		srv := asynq.NewServer(redis, asynq.Config{Concurrency: concurrency, Queues: map[string]int{queue: 1},
			LogLevel: asynq.ErrorLevel})
		require.NoError(b, srv.Start(mux))
		var last time.Time
		testenv.Eventually(b, 5*time.Minute, func() bool {
			info, err := insp.GetQueueInfo(queue)
			require.NoError(b, err)
			last = time.Now()
			return info.Completed == n
		}, "%d Asynq tasks to complete", n)
		b.ReportMetric(float64(n)/last.Sub(time.Unix(0, firstNano.Load())).Seconds(), "jobs/s")
		srv.Shutdown()
	}
}
