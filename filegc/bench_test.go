package filegc_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/filegc"
	"github.com/chatplat/job-service/internal/testenv"
)

// BenchmarkEventGC measures the event GC: N ref_count=0 events for N files in S3,
// objects deleted per second end to end once the grace period ends, against the seed's way
// (one RemoveObject then one DELETE per file, serially) on another N identical files in the
// same run. N is JOBSVC_GC_BENCH_N (default 20000); the grace JOBSVC_GC_BENCH_GRACE (10s;
// publishing must finish within it); the consumer's pull interval JOBSVC_GC_BENCH_PULL (0s).
//
//	source deploy/local/env.sh && go test -run '^$' -bench EventGC -benchtime 1x -timeout 30m ./filegc/
func BenchmarkEventGC(b *testing.B) {
	n := testenv.EnvInt(b, "JOBSVC_GC_BENCH_N", 20000)
	benchGrace := testenv.EnvDuration(b, "JOBSVC_GC_BENCH_GRACE", 10*time.Second)
	for i := 0; i < b.N; i++ {
		benchOnce(b, n, benchGrace)
	}
}

func benchOnce(b *testing.B, n int, benchGrace time.Duration) {
	ctx := context.Background()
	e := newEnvWith(b, nil, fmt.Sprintf("grace: %s, batch_size: 128, goroutines: 16, pull_interval: %s", benchGrace, benchPull()))
	b.StopTimer()
	// Files 1..n go by events, n+1..2n the seed's way.
	seedStart := time.Now()
	putObjects(b, e, 2*n)
	_, err := e.s.Pool.CopyFrom(ctx, pgx.Identifier{"file_metadata"},
		[]string{"id", "file_hash", "bucket", "object_path", "size_bytes", "ref_count", "status", "updated_at"},
		pgx.CopyFromSlice(2*n, func(i int) ([]any, error) {
			id := int64(i + 1)
			return []any{id, fmt.Sprintf("h%d", id), e.b.Name, objKey(id), int64(64), int32(0), int16(2),
				time.Now().Add(-time.Minute)}, nil
		}))
	require.NoError(b, err)
	fmt.Printf("seeded %d files and objects in %s\n", 2*n, time.Since(seedStart).Round(time.Millisecond))

	b.StartTimer()
	// Event way: publish n events stamped now; they are due at t0+grace.
	t0 := time.Now().UTC()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id := next.Add(1)
				if id > int64(n) {
					return
				}
				body, err := filegc.Encode(filegc.Event{FileID: id, FileHash: fmt.Sprintf("h%d", id), Bucket: e.b.Name,
					ObjectPath: objKey(id), EventTime: t0}, time.Now())
				if err == nil {
					_, err = e.prod.PublishRaw(ctx, e.topic, filegc.DefaultTag, nil, body, time.Time{})
				}
				if err != nil {
					b.Errorf("publish event %d: %v", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	published := time.Since(t0)
	due := t0.Add(benchGrace)
	if published > benchGrace {
		b.Logf("publishing took %s, longer than the grace period %s: raise JOBSVC_GC_BENCH_GRACE", published, benchGrace)
	}
	var done time.Time
	testenv.Eventually(b, 20*time.Minute, func() bool {
		var left int
		require.NoError(b, e.s.Pool.QueryRow(ctx, `SELECT count(*) FROM file_metadata WHERE id <= $1`, n).Scan(&left))
		if left == 0 {
			done = time.Now()
		}
		return left == 0
	}, "event GC of %d files", n)
	eventDur := done.Sub(due)
	b.StopTimer()
	var batches int
	var avgDue, avgMs, maxMs, lockMs, s3Ms, delMs float64
	var first, last time.Time
	require.NoError(b, e.s.Pool.QueryRow(ctx, `SELECT count(*), avg((result->>'due')::int),
		avg(extract(epoch FROM finished_at - started_at) * 1000), max(extract(epoch FROM finished_at - started_at) * 1000),
		avg((result->>'lock_ms')::int), avg((result->>'s3_ms')::int), avg((result->>'delete_ms')::int),
		min(started_at), max(finished_at)
		FROM job_runs WHERE job = $1`, filegc.JobName).Scan(&batches, &avgDue, &avgMs, &maxMs, &lockMs, &s3Ms, &delMs, &first, &last))
	fmt.Printf("%d batches, %.1f due events each, %.0f ms each (max %.0f; lock %.0f, s3 %.0f, delete %.0f); first started %s after due, last finished %s after due",
		batches, avgDue, avgMs, maxMs, lockMs, s3Ms, delMs, first.Sub(due), last.Sub(due))
	fmt.Println()
	var p50, p90 float64
	require.NoError(b, e.s.Pool.QueryRow(ctx, `SELECT
		percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - $2::timestamptz)),
		percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - $2::timestamptz))
		FROM job_runs WHERE job = $1`, filegc.JobName, due).Scan(&p50, &p90))
	fmt.Printf("batches started after due: p50 %.2fs, p90 %.2fs\n", p50, p90)

	// Seed way, same run, the other n files.
	seedWay := time.Now()
	for id := int64(n + 1); id <= int64(2*n); id++ {
		require.NoError(b, e.b.Client.RemoveObject(ctx, e.b.Name, objKey(id), minio.RemoveObjectOptions{}))
		_, err := e.s.Pool.Exec(ctx, `DELETE FROM file_metadata WHERE id = $1 AND status = 2 AND ref_count = 0`, id)
		require.NoError(b, err)
	}
	seedDur := time.Since(seedWay)
	require.Zero(b, e.b.Count(b), "every object removed")

	eventRate := float64(n) / eventDur.Seconds()
	seedRate := float64(n) / seedDur.Seconds()
	b.ReportMetric(eventRate, "event_objs/s")
	b.ReportMetric(seedRate, "seed_objs/s")
	b.ReportMetric(eventRate/seedRate, "x_faster")
	fmt.Printf("event GC: %d objects in %s after the grace period ended (published in %s, grace %s): %.0f objects/s\n",
		n, eventDur.Round(time.Millisecond), published.Round(time.Millisecond), benchGrace, eventRate)
	fmt.Printf("seed way: %d objects in %s (RemoveObject + DELETE per file, serially): %.0f objects/s\n",
		n, seedDur.Round(time.Millisecond), seedRate)
	fmt.Printf("ratio: %.1fx\n", eventRate/seedRate)
}

func objKey(id int64) string { return fmt.Sprintf("bench/%08d", id) }

func putObjects(b testing.TB, e *env, count int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	body := bytes.Repeat([]byte("x"), 64)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id := next.Add(1)
				if id > int64(count) {
					return
				}
				if _, err := e.b.Client.PutObject(context.Background(), e.b.Name, objKey(id), bytes.NewReader(body), 64,
					minio.PutObjectOptions{}); err != nil {
					b.Errorf("put %d: %v", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// benchPull is the consumer's pull interval for the benchmark: JOBSVC_GC_BENCH_PULL, default
// the config default (0s).
func benchPull() string {
	if v := os.Getenv("JOBSVC_GC_BENCH_PULL"); v != "" {
		return v
	}
	return "0s"
}
