package handlers

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// BenchmarkRetention seeds JOBSVC_BENCH_RETENTION_ROWS finished runs (default 5,000,000; half
// older than 30 days, each with an attempt) and prunes them with the real handler, while a
// writer keeps claiming new runs. It reports the slowest batch (the longest any DELETE held
// its row locks) and the slowest concurrent insert (what a node would feel).
//
//	JOBSVC_BENCH_RETENTION_ROWS=5000000 go test -run '^$' -bench Retention -benchtime 1x -timeout 60m ./handlers
func BenchmarkRetention(b *testing.B) {
	rows := testenv.EnvInt(b, "JOBSVC_BENCH_RETENTION_ROWS", 5_000_000)
	batch := testenv.EnvInt(b, "JOBSVC_BENCH_RETENTION_BATCH", 1000)
	s := testenv.NewSchema(b)
	ctx := context.Background()
	require.NoError(b, ledger.Migrate(ctx, s.Pool))
	seedStart := time.Now()
	for done := 0; done < rows; done += 500_000 {
		n := min(500_000, rows-done)
		// Attempts live in the run row since migration 00050.
		_, err := s.Pool.Exec(ctx, `INSERT INTO job_runs (job, run_key, trigger, scheduled_at, status, created_at)
			SELECT 'noop', $2 || '-' || g, 'manual', t, 'succeeded', t
			FROM generate_series(1, $1) g, LATERAL (SELECT now() - (g % 60) * interval '1 day' - g * interval '1 ms' AS t) x`,
			n, strconv.Itoa(done))
		require.NoError(b, err)
	}
	_, err := s.Pool.Exec(ctx, `ANALYZE job_runs`)
	require.NoError(b, err)
	b.Logf("seeded %d runs in %s", rows, time.Since(seedStart).Round(time.Second))

	// A writer like a node: one small insert at a time, every latency recorded (p50, p99, max
	// are what a node's claims would feel while the deletes run).
	wctx, stopWriter := context.WithCancel(ctx)
	writerDone := make(chan []time.Duration)
	go func() {
		var lat []time.Duration
		var failed error
		for i := 0; wctx.Err() == nil; i++ {
			t0 := time.Now()
			_, err := s.Pool.Exec(wctx, `INSERT INTO job_runs (job, run_key, trigger, scheduled_at, status)
				VALUES ('noop', $1, 'manual', now(), 'running')`, "live-"+strconv.Itoa(i))
			switch {
			case err == nil:
				lat = append(lat, time.Since(t0))
			case wctx.Err() == nil && failed == nil:
				failed = err
			}
		}
		if failed != nil {
			b.Errorf("concurrent insert failed: %v", failed)
		}
		writerDone <- lat
	}()

	h, err := NewRetention(ledger.New(s.Pool), RetentionConfig{BatchSize: batch, Pause: time.Millisecond}, time.Now, testenv.Logger(b))
	require.NoError(b, err)
	b.ResetTimer()
	res, err := h.Run(ctx, &job.Run[RetentionArgs]{})
	b.StopTimer()
	stopWriter()
	lat := <-writerDone
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	require.NoError(b, err)
	r := res.(RetentionResult)
	runs := r.Targets[0]
	require.True(b, runs.Done)
	b.ReportMetric(float64(runs.Deleted), "runs_deleted")
	b.ReportMetric(float64(runs.Batches), "batches")
	b.ReportMetric(runs.SecondsUsed*1000/float64(max(runs.Batches, 1)), "ms/batch")
	b.ReportMetric(float64(runs.MaxBatch.Microseconds())/1000, "max_batch_ms")
	b.ReportMetric(float64(len(lat)), "inserts")
	b.ReportMetric(float64(pct(0.5).Microseconds())/1000, "p50_insert_ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99_insert_ms")
	b.ReportMetric(float64(pct(1).Microseconds())/1000, "max_insert_ms")
	b.Logf("concurrent inserts: %d, p50 %s, p99 %s, p99.9 %s, max %s", len(lat), pct(0.5), pct(0.99), pct(0.999), pct(1))
	b.ReportMetric(float64(runs.Deleted)/runs.SecondsUsed, "rows/s")
}
