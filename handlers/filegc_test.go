package handlers

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

func TestFileGCConfigValidate(t *testing.T) {
	t.Parallel()
	ok := FileGCConfig{}.WithDefaults()
	require.NoError(t, ok.Validate())
	for name, mut := range map[string]func(*FileGCConfig){
		"file_table.table":             func(c *FileGCConfig) { c.File.Table = "file_metadata; DROP TABLE users" },
		"file_table.columns.ref_count": func(c *FileGCConfig) { c.File.Columns.RefCount = `"x"` },
		"grace":                        func(c *FileGCConfig) { c.Grace = time.Second },
		"file_table.collecting_status": func(c *FileGCConfig) { c.File.CollectingStatus = 2 },
		"batch_size":                   func(c *FileGCConfig) { c.BatchSize = 5000 },
		"max_deletes":                  func(c *FileGCConfig) { c.MaxDeletes = -1 },
	} {
		c := ok
		mut(&c)
		err := c.Validate()
		require.Error(t, err, name)
		require.Contains(t, err.Error(), name)
	}
	neg := -1
	require.Error(t, (&FileGCArgs{MaxDeletes: &neg}).Validate())
}

// gcFixture is a test schema with the chat tables and the ledger, and a fresh bucket.
type gcFixture struct {
	s      *testenv.Schema
	b      *testenv.Bucket
	ledger *ledger.Ledger
}

func newGCFixture(t *testing.T) *gcFixture {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	require.NoError(t, ledger.Migrate(context.Background(), s.Pool))
	return &gcFixture{s: s, b: testenv.NewBucket(t), ledger: ledger.New(s.Pool)}
}

// file inserts a file_metadata row and, when withObject, its object.
func (f *gcFixture) file(t *testing.T, id int64, status, refCount int, age time.Duration, withObject bool) string {
	t.Helper()
	key := fmt.Sprintf("files/%d.bin", id)
	if withObject {
		f.b.Put(t, key, 100+int(id))
	}
	_, err := f.s.Pool.Exec(context.Background(), `INSERT INTO file_metadata (id, file_hash, bucket, object_path, size_bytes,
		ref_count, status, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now() - $8::interval)`,
		id, fmt.Sprintf("h%d", id), f.b.Name, key, 100+id, refCount, status, age.String())
	require.NoError(t, err)
	return key
}

func (f *gcFixture) rowExists(t *testing.T, id int64) bool {
	var n int
	require.NoError(t, f.s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM file_metadata WHERE id = $1`, id).Scan(&n))
	return n == 1
}

// runRow makes the job_runs row a real run would have, so gc_log can point at it.
func (f *gcFixture) runRow(t *testing.T, shard job.Shard) handlertest.Job[FileGCArgs] {
	env := job.Envelope{Job: FileGCKind, RunKey: "test:" + testenv.Suffix(), Trigger: job.TriggerManual,
		ScheduledAt: time.Now(), Shard: shard}
	c, err := f.ledger.ClaimRun(context.Background(), env, "test", "", time.Minute)
	require.NoError(t, err)
	return handlertest.Job[FileGCArgs]{RunKey: env.RunKey, ScheduledAt: env.ScheduledAt, Shard: shard, RunID: c.RunID}
}

func (f *gcFixture) handler(t *testing.T, cfg FileGCConfig) *FileGC {
	g, err := NewFileGC(f.s.Pool, f.b.Client, cfg, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	return g
}

const day = 24 * time.Hour

func TestFileGCSweepDeletesEligibleKeepsTheRest(t *testing.T) {
	f := newGCFixture(t)
	ctx := context.Background()
	eligible := map[int64]string{}
	for id := int64(1); id <= 7; id++ {
		eligible[id] = f.file(t, id, 2, 0, 2*day, true)
	}
	f.file(t, 8, 2, 0, 2*day, false) // object already gone
	kept := map[int64]string{
		20: f.file(t, 20, 2, 0, time.Hour, true), // deleted recently: still in its grace period
		21: f.file(t, 21, 2, 1, 2*day, true),     // deleted by one user, still referenced
		22: f.file(t, 22, 1, 0, 2*day, true),     // live
		23: f.file(t, 23, 1, 3, 2*day, true),     // live and shared
	}
	g := f.handler(t, FileGCConfig{BatchSize: 3, PageSize: 4})
	run := f.runRow(t, job.Shard{Index: 0, Total: 1})
	out, err := handlertest.Run(ctx, g, run)
	require.NoError(t, err)
	res := out.(FileGCResult)
	require.Equal(t, 8, res.Scanned)
	require.Equal(t, 8, res.DeletedRows)
	require.Equal(t, 7, res.DeletedObjects)
	require.Equal(t, 1, res.MissingObjects)
	require.False(t, res.Capped)
	var wantBytes int64
	for id, key := range eligible {
		require.False(t, f.b.Exists(t, key), key)
		require.False(t, f.rowExists(t, id))
		wantBytes += 100 + id
	}
	require.Equal(t, wantBytes, res.BytesFreed)
	require.False(t, f.rowExists(t, 8))
	for id, key := range kept {
		require.True(t, f.b.Exists(t, key), key)
		require.True(t, f.rowExists(t, id))
	}
	// gc_log answers for every removed file, with the run that removed it.
	for id := int64(1); id <= 8; id++ {
		log, err := f.ledger.GCLog(ctx, ledger.GCLogFilter{FileID: id})
		require.NoError(t, err)
		require.Len(t, log, 1, "file %d", id)
		require.Equal(t, run.RunID, *log[0].RunID)
		require.Equal(t, id == 8, log[0].ObjectMissing)
	}

	// A second run finds nothing.
	out, err = handlertest.Run(ctx, g, f.runRow(t, job.Shard{Index: 0, Total: 1}))
	require.NoError(t, err)
	require.Zero(t, out.(FileGCResult).Scanned)
}

func TestFileGCShardsSplitByID(t *testing.T) {
	f := newGCFixture(t)
	for id := int64(1); id <= 9; id++ {
		f.file(t, id, 2, 0, 2*day, true)
	}
	g := f.handler(t, FileGCConfig{})
	out, err := handlertest.Run(context.Background(), g, f.runRow(t, job.Shard{Index: 1, Total: 3}))
	require.NoError(t, err)
	require.Equal(t, 3, out.(FileGCResult).DeletedRows)
	for id := int64(1); id <= 9; id++ {
		require.Equal(t, id%3 != 1, f.rowExists(t, id), "file %d", id)
	}
}

// A file re-referenced after the scan read it and before the batch locked it survives, with
// its object.
func TestFileGCReReferencedBetweenScanAndDeleteSurvives(t *testing.T) {
	f := newGCFixture(t)
	ctx := context.Background()
	var keys []string
	for id := int64(1); id <= 4; id++ {
		keys = append(keys, f.file(t, id, 2, 0, 2*day, true))
	}
	g := f.handler(t, FileGCConfig{})
	g.afterScan = func(ctx context.Context, ids []int64) {
		require.Equal(t, []int64{1, 2, 3, 4}, ids)
		// The file service: a user uploads the same content again (file 2), and another
		// user's edit touches file 3 without re-referencing it.
		_, err := f.s.Pool.Exec(ctx, `UPDATE file_metadata SET ref_count = 1, status = 1, updated_at = now() WHERE id = 2`)
		require.NoError(t, err)
		_, err = f.s.Pool.Exec(ctx, `UPDATE file_metadata SET updated_at = now() WHERE id = 3`)
		require.NoError(t, err)
	}
	out, err := handlertest.Run(ctx, g, f.runRow(t, job.Shard{Index: 0, Total: 1}))
	require.NoError(t, err)
	res := out.(FileGCResult)
	require.Equal(t, 2, res.DeletedRows)
	require.Equal(t, 2, res.Survived)
	require.True(t, f.rowExists(t, 2))
	require.True(t, f.b.Exists(t, keys[1]))
	require.True(t, f.rowExists(t, 3))
	require.True(t, f.b.Exists(t, keys[2]))
	require.False(t, f.b.Exists(t, keys[0]))
	require.False(t, f.b.Exists(t, keys[3]))
}

// A re-reference that arrives while the batch holds its rows waits for the GC and then finds
// the row tombstoned (or gone): it never leaves a referenced row whose object is gone.
func TestFileGCReReferenceDuringDeleteNeverLeavesDanglingRow(t *testing.T) {
	f := newGCFixture(t)
	ctx := context.Background()
	key := f.file(t, 1, 2, 0, 2*day, true)
	g := f.handler(t, FileGCConfig{})
	var wg sync.WaitGroup
	var updated int64 = -1
	var updErr error
	g.reaper.OnLocked(func(ctx context.Context, ids []int64) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The file service's re-reference, as the README's contract writes it: never a
			// row in the collecting status (3).
			tag, err := f.s.Pool.Exec(ctx, `UPDATE file_metadata SET ref_count = ref_count + 1, status = 1
				WHERE id = 1 AND status <> 3`)
			updated, updErr = tag.RowsAffected(), err
		}()
		// Give the writer time to block on our row lock; the outcome does not depend on it.
		time.Sleep(200 * time.Millisecond)
	})
	_, err := handlertest.Run(ctx, g, f.runRow(t, job.Shard{Index: 0, Total: 1}))
	require.NoError(t, err)
	wg.Wait()
	require.NoError(t, updErr)
	require.Zero(t, updated, "the writer must find the row gone, not re-reference a deleted object")
	require.False(t, f.rowExists(t, 1))
	require.False(t, f.b.Exists(t, key))
}

func TestFileGCDryRunDeletesNothing(t *testing.T) {
	f := newGCFixture(t)
	var keys []string
	for id := int64(1); id <= 5; id++ {
		keys = append(keys, f.file(t, id, 2, 0, 2*day, true))
	}
	g := f.handler(t, FileGCConfig{BatchSize: 2})
	run := f.runRow(t, job.Shard{Index: 0, Total: 1})
	run.Args.DryRun = true
	out, err := handlertest.Run(context.Background(), g, run)
	require.NoError(t, err)
	res := out.(FileGCResult)
	require.True(t, res.DryRun)
	require.Equal(t, 5, res.DeletedObjects, "would delete")
	require.Zero(t, res.DeletedRows)
	for i, k := range keys {
		require.True(t, f.b.Exists(t, k))
		require.True(t, f.rowExists(t, int64(i+1)))
	}
	log, err := f.ledger.GCLog(context.Background(), ledger.GCLogFilter{RunID: run.RunID})
	require.NoError(t, err)
	require.Empty(t, log)
}

func TestFileGCMaxDeletesCapsTheRun(t *testing.T) {
	f := newGCFixture(t)
	for id := int64(1); id <= 10; id++ {
		f.file(t, id, 2, 0, 2*day, true)
	}
	g := f.handler(t, FileGCConfig{BatchSize: 3, PageSize: 4})
	run := f.runRow(t, job.Shard{Index: 0, Total: 1})
	four := 4
	run.Args.MaxDeletes = &four
	out, err := handlertest.Run(context.Background(), g, run)
	require.NoError(t, err)
	res := out.(FileGCResult)
	require.True(t, res.Capped)
	require.Equal(t, 4, res.DeletedRows)
	require.Contains(t, res.StoppedReason, "max_deletes 4")
	var left int
	require.NoError(t, f.s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM file_metadata`).Scan(&left))
	require.Equal(t, 6, left)
	require.Equal(t, 6, f.b.Count(t))
	require.EqualValues(t, 6, res.Backlog, "what the capped run left for the next")
}

// TestFileGCReportsTheObjectIndex: the run names the index its shared-object check uses, and
// without one says which to create (it still collects).
func TestFileGCReportsTheObjectIndex(t *testing.T) {
	f := newGCFixture(t)
	ctx := context.Background()
	key := f.file(t, 1, 2, 0, 2*day, true)
	g := f.handler(t, FileGCConfig{})
	out, err := handlertest.Run(ctx, g, f.runRow(t, job.Shard{Index: 0, Total: 1}))
	require.NoError(t, err)
	require.Equal(t, "file_metadata_object", out.(FileGCResult).ObjectIndex)
	require.Empty(t, out.(FileGCResult).IndexWarning)

	_, err = f.s.Pool.Exec(ctx, `DROP INDEX file_metadata_object`)
	require.NoError(t, err)
	f.file(t, 2, 2, 0, 2*day, true)
	out, err = handlertest.Run(ctx, g, f.runRow(t, job.Shard{Index: 0, Total: 1}))
	require.NoError(t, err)
	res := out.(FileGCResult)
	require.Empty(t, res.ObjectIndex)
	require.Contains(t, res.IndexWarning, `CREATE INDEX ON "file_metadata" ("bucket", "object_path")`)
	require.Equal(t, 1, res.DeletedObjects)
	require.False(t, f.b.Exists(t, key))
}
