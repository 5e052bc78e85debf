package chaos_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/filereap"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// The file GC's promise: at every instant, a file_metadata row the file service
// can re-reference (any status but collecting, 3) has its object, and no object a live row
// names is deleted. Each test below breaks the GC in its S3 phase on real servers, checks the
// promise over every row of the table, then lets a later run finish and checks again.

const (
	gcCollectable = 40 // status 2, ref_count 0, past the grace period: to be collected
	gcLive        = 5  // status 1: must keep row and object
	gcSharedID    = 9001
	gcSharedWith  = 1 // the live row 9001 names the object of collectable file 1
)

// gcTable is the test's file table and bucket.
type gcTable struct {
	pool *pgxpool.Pool
	b    *testenv.Bucket
}

func applyChatSchema(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	sql, err := os.ReadFile(filepath.Join(chaos.RepoRoot(), "deploy", "local", "chat_schema.sql"))
	require.NoError(t, err)
	_, err = pool.Exec(context.Background(), string(sql))
	require.NoError(t, err)
}

func gcKey(id int64) string { return fmt.Sprintf("files/%d.bin", id) }

// seed writes the collectable files, the live ones, and a live row sharing the object of a
// collectable one.
func (g *gcTable) seed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	ins := func(id int64, key string, status, refs int) {
		_, err := g.pool.Exec(ctx, `INSERT INTO file_metadata (id, file_hash, bucket, object_path, size_bytes, ref_count,
			status, updated_at) VALUES ($1, $2, $3, $4, 64, $5, $6, now() - interval '2 days')`,
			id, fmt.Sprintf("h%d", id), g.b.Name, key, refs, status)
		require.NoError(t, err)
	}
	for id := int64(1); id <= gcCollectable; id++ {
		g.b.Put(t, gcKey(id), 64)
		ins(id, gcKey(id), 2, 0)
	}
	for id := int64(1001); id < 1001+gcLive; id++ {
		g.b.Put(t, gcKey(id), 64)
		ins(id, gcKey(id), 1, 1)
	}
	ins(gcSharedID, gcKey(gcSharedWith), 1, 1)
}

// invariant checks every row of the table against the real S3 (not through any proxy) and
// returns how many rows are tombstones.
func (g *gcTable) invariant(t *testing.T) (tombstones int) {
	t.Helper()
	ctx := context.Background()
	rows, err := g.pool.Query(ctx, `SELECT id, bucket, object_path, status FROM file_metadata ORDER BY id`)
	require.NoError(t, err)
	type fileRow struct {
		id           int64
		bucket, path string
		status       int
	}
	var all []fileRow
	for rows.Next() {
		var r fileRow
		require.NoError(t, rows.Scan(&r.id, &r.bucket, &r.path, &r.status))
		all = append(all, r)
	}
	require.NoError(t, rows.Err())
	for _, r := range all {
		if r.status == 3 {
			tombstones++
			continue
		}
		_, err := g.b.Client.StatObject(ctx, r.bucket, r.path, minio.StatObjectOptions{})
		require.NoError(t, err, "row %d (status %d) can be re-referenced but its object %s is gone", r.id, r.status, r.path)
	}
	// Rows the GC logged as removed are gone.
	var back int
	require.NoError(t, g.pool.QueryRow(ctx, `SELECT count(*) FROM gc_log g JOIN file_metadata f ON f.id = g.file_id`).Scan(&back))
	require.Zero(t, back, "a logged file still has its row")
	return tombstones
}

// collected checks the end state: every collectable row gone and logged once, their objects
// gone (but the shared one), live rows and objects untouched, no tombstone left.
func (g *gcTable) collected(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	g.invariant(t)
	var left, logged, dup, tombs int
	require.NoError(t, g.pool.QueryRow(ctx, `SELECT count(*) FROM file_metadata WHERE id <= $1`, gcCollectable).Scan(&left))
	require.Zero(t, left, "collectable rows left")
	require.NoError(t, g.pool.QueryRow(ctx, `SELECT count(DISTINCT file_id), count(*) - count(DISTINCT file_id) FROM gc_log`).Scan(&logged, &dup))
	require.Equal(t, gcCollectable, logged)
	require.Zero(t, dup, "files logged twice")
	require.NoError(t, g.pool.QueryRow(ctx, `SELECT count(*) FROM gc_tombstones`).Scan(&tombs))
	require.Zero(t, tombs, "tombstones left")
	for id := int64(2); id <= gcCollectable; id++ {
		require.False(t, g.b.Exists(t, gcKey(id)), "object of collected file %d", id)
	}
	require.True(t, g.b.Exists(t, gcKey(gcSharedWith)), "the object row %d still names", gcSharedID)
	for id := int64(1001); id < 1001+gcLive; id++ {
		require.True(t, g.b.Exists(t, gcKey(id)))
	}
}

func newGCTable(t *testing.T) (*gcTable, *ledger.Ledger) {
	t.Helper()
	testenv.Integration(t)
	s := testenv.NewSchema(t)
	applyChatSchema(t, s.Pool)
	require.NoError(t, ledger.Migrate(context.Background(), s.Pool))
	g := &gcTable{pool: s.Pool, b: testenv.NewBucket(t)}
	g.seed(t)
	return g, ledger.New(s.Pool)
}

func startProxy(t *testing.T) *chaos.S3Proxy {
	t.Helper()
	p, err := chaos.StartS3Proxy(testenv.S3Endpoint())
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// sweep returns the file_gc handler talking to S3 through the proxy.
func sweep(t *testing.T, pool *pgxpool.Pool, p *chaos.S3Proxy, s3Timeout time.Duration) *handlers.FileGC {
	t.Helper()
	g, err := handlers.NewFileGC(pool, testenv.S3Client(t, p.Endpoint), handlers.FileGCConfig{BatchSize: 16,
		ReaperOptions: filereap.ReaperOptions{S3Timeout: s3Timeout}}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	return g
}

func sweepRun(t *testing.T, l *ledger.Ledger) *job.Run[handlers.FileGCArgs] {
	t.Helper()
	env := job.Envelope{Job: handlers.FileGCKind, RunKey: "manual:gc-" + testenv.Suffix(), Trigger: job.TriggerManual,
		ScheduledAt: time.Now(), Shard: job.Shard{Index: 0, Total: 1}}
	c, err := l.ClaimRun(context.Background(), env, "test", "", time.Minute)
	require.NoError(t, err)
	return &job.Run[handlers.FileGCArgs]{Envelope: env, RunID: c.RunID, Attempt: 1}
}

// rerunUntilCollected runs the sweep again (S3 healthy) until every collectable file is
// gone: the tombstones the fault left are finished once they are older than s3_timeout.
func rerunUntilCollected(t *testing.T, g *handlers.FileGC, l *ledger.Ledger, pool *pgxpool.Pool) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() bool {
		_, err := g.Run(context.Background(), sweepRun(t, l))
		require.NoError(t, err)
		var left int
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM file_metadata WHERE id <= $1`, gcCollectable).Scan(&left))
		return left == 0
	}, "a healthy sweep to finish what the fault left")
}

// The run is cancelled (a drain, a job timeout, a lost claim) while its multi-delete is at
// the server: the server deletes the keys, the answer never arrives.
func TestFileGCCancelledInS3PhaseLeavesNoReReferenceableRowWithoutObject(t *testing.T) {
	t.Parallel()
	g, l := newGCTable(t)
	p := startProxy(t)
	p.SetMode(chaos.S3StallAfterDelete)
	h := sweep(t, g.pool, p, 2*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.Stalled():
			cancel()
		case <-time.After(time.Minute):
		}
	}()
	_, err := h.Run(ctx, sweepRun(t, l))
	require.ErrorIs(t, err, context.Canceled)
	faultAt := time.Now()
	require.Positive(t, p.Forwarded(), "the multi-delete reached the server")
	tomb := g.invariant(t)
	require.Positive(t, tomb, "the cancelled batch's rows are tombstones")
	t.Logf("cancelled in the S3 phase: %d tombstones, invariant holds over every row", tomb)

	p.SetMode(chaos.S3Pass)
	p.Release()
	rerunUntilCollected(t, h, l, g.pool)
	g.collected(t)
	t.Logf("recovered %s after the cancel", time.Since(faultAt).Round(time.Millisecond))
}

// S3 deletes the keys, then the answer stalls past s3_timeout.
func TestFileGCS3TimeoutAfterDeleteLeavesNoReReferenceableRowWithoutObject(t *testing.T) {
	t.Parallel()
	g, l := newGCTable(t)
	p := startProxy(t)
	p.SetMode(chaos.S3StallAfterDelete)
	h := sweep(t, g.pool, p, time.Second)
	out, err := h.Run(context.Background(), sweepRun(t, l))
	require.Error(t, err, "objects without an answer are failures")
	faultAt := time.Now()
	res := out.(handlers.FileGCResult)
	require.Positive(t, res.Failures)
	require.Positive(t, p.Forwarded())
	tomb := g.invariant(t)
	require.Positive(t, tomb)
	t.Logf("S3 timed out after deleting: %d failures, %d tombstones, invariant holds", res.Failures, tomb)

	p.SetMode(chaos.S3Pass)
	p.Release()
	rerunUntilCollected(t, h, l, g.pool)
	g.collected(t)
	t.Logf("recovered %s after the timeout", time.Since(faultAt).Round(time.Millisecond))
}

// kill -9 of the node while its file_gc run waits on a multi-delete the server already
// carried out; another node's next run finishes the work.
func TestFileGCKill9InS3PhaseLeavesNoReReferenceableRowWithoutObject(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "", nil, chaos.Settings{Jobs: `file_gc: {max_attempts: 3, timeout: 2m, overlap: allow}`})
	applyChatSchema(t, w.pool)
	g := &gcTable{pool: w.pool, b: testenv.NewBucket(t)}
	g.seed(t)
	p := startProxy(t)
	extra := func(s3Timeout time.Duration) func(*chaos.Settings) {
		return func(s *chaos.Settings) {
			s.Extra = fmt.Sprintf("s3: {endpoint: %q, access_key: %q, secret_key: %q}\nhandlers: {file_gc: {batch_size: 16, s3_timeout: %s}}\n",
				p.Endpoint, testenv.S3AccessKey(), testenv.S3SecretKey(), s3Timeout)
		}
	}
	a := w.c.Start("a", extra(time.Minute))
	w.ready(1)
	p.SetMode(chaos.S3StallAfterDelete)
	first := "manual:gc-kill9-" + testenv.Suffix()
	w.publish(forced(handlers.FileGCKind, first, 1, `{}`)...)
	select {
	case <-p.Stalled():
	case <-time.After(90 * time.Second):
		t.Fatal("the node never reached its S3 phase")
	}
	a.Kill()
	killedAt := time.Now()
	tomb := g.invariant(t)
	require.Positive(t, tomb)
	t.Logf("killed a in the S3 phase: %d tombstones, invariant holds over every row", tomb)

	p.SetMode(chaos.S3Pass)
	p.Release()
	// b leads the ticker, whose repair pass republishes the run a left running.
	w.c.Start("b", func(s *chaos.Settings) { extra(time.Second)(s); s.Ticker = true })
	w.ready(1)
	second := "manual:gc-after-" + testenv.Suffix()
	w.publish(forced(handlers.FileGCKind, second, 1, `{}`)...)
	rs := w.waitDone(handlers.FileGCKind, second, 1, 2*time.Minute)
	require.Equal(t, "succeeded", rs[0].Status, "%v", rs[0])
	g.invariant(t)
	testenv.Eventually(t, time.Minute, func() bool {
		var left int
		require.NoError(t, w.pool.QueryRow(context.Background(), `SELECT count(*) FROM file_metadata WHERE id <= $1`, gcCollectable).Scan(&left))
		if left > 0 { // tombstones younger than s3_timeout when the run began: once more
			w.publish(forced(handlers.FileGCKind, "manual:gc-again-"+testenv.Suffix(), 1, `{}`)...)
		}
		return left == 0
	}, "every collectable file to be gone")
	g.collected(t)
	t.Logf("recovered %s after kill -9", time.Since(killedAt).Round(time.Millisecond))
	// No run is lost: the killed one is redone by b and succeeds.
	rs = w.waitDone(handlers.FileGCKind, first, 1, 2*time.Minute)
	require.Equal(t, "succeeded", rs[0].Status, "%v", rs[0])
	require.Equal(t, attempt{1, "a", "abandoned"}, rs[0].Attempts[0])
	t.Logf("the killed run: %v", rs[0])
	w.noneRunning(time.Now())
}
