package handlers

import (
	"context"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/filereap"
	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/filesvc"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
)

// heldDeleteS3 is an S3 that accepted a multi-delete and performs it later, after the run that
// sent it was cut and its call returned: a client's cancel does not stop a delete the server
// accepted. The server is done by the request's deadline (the S3 timeout) at the latest, or
// earlier when the test releases it.
type heldDeleteS3 struct {
	filereap.ObjectStore
	cancel  context.CancelFunc
	release chan struct{}
	done    chan struct{}
}

func (h heldDeleteS3) RemoveObjectsWithResult(ctx context.Context, bucket string, objects <-chan minio.ObjectInfo, opts minio.RemoveObjectsOptions) <-chan minio.RemoveObjectResult {
	var keys []minio.ObjectInfo
	for o := range objects {
		keys = append(keys, o)
	}
	// The server finishes what it accepted before the client's deadline: a second early.
	deadline, _ := ctx.Deadline()
	go func() {
		defer close(h.done)
		select {
		case <-h.release:
		case <-time.After(time.Until(deadline) - time.Second):
		}
		ch := make(chan minio.ObjectInfo, len(keys))
		for _, k := range keys {
			ch <- k
		}
		close(ch)
		for range h.ObjectStore.RemoveObjectsWithResult(context.Background(), bucket, ch, opts) {
		}
	}()
	h.cancel()
	out := make(chan minio.RemoveObjectResult)
	close(out)
	return out
}

// TestFileGCRetryFinishesItsDeadAttemptsTombstones: the retry of a sweep cut in its S3 phase
// finishes the tombstones its earlier attempt left in the same run, but only once their last
// S3 call is over (s3_timeout after the tombstone): that call may still be deleting on the
// server, and a file uploaded again at the same key after the retry dropped the row must not
// lose its new object to it.
func TestFileGCRetryFinishesItsDeadAttemptsTombstones(t *testing.T) {
	f := newGCFixture(t)
	var keys []string
	for id := int64(1); id <= 5; id++ {
		keys = append(keys, f.file(t, id, 2, 0, 2*day, true))
	}
	cfg := FileGCConfig{BatchSize: 2}
	cfg.S3Timeout = 4 * time.Second // the held delete is done within it; a day-long wait would fail the test's deadline
	first, cancel := context.WithCancel(context.Background())
	defer cancel()
	held := heldDeleteS3{ObjectStore: f.b.Client, cancel: cancel, release: make(chan struct{}), done: make(chan struct{})}
	g1, err := NewFileGC(f.s.Pool, held, cfg, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	run := f.runRow(t, job.Shard{Index: 0, Total: 1})
	run.Attempt = 1
	_, err = handlertest.Run(first, g1, run)
	require.Error(t, err)
	var tombs int
	require.NoError(t, f.s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM file_metadata WHERE status = 3`).Scan(&tombs))
	require.Equal(t, 2, tombs, "the first batch is tombstoned, its objects not deleted yet")

	run.Attempt = 2
	out, err := handlertest.Run(context.Background(), f.handler(t, cfg), run)
	require.NoError(t, err)
	res := out.(FileGCResult)
	require.Equal(t, 2, res.Resumed, "the dead attempt's tombstones, finished by its retry")
	require.Equal(t, 5, res.DeletedRows)
	for i, k := range keys {
		require.False(t, f.b.Exists(t, k), k)
		require.False(t, f.rowExists(t, int64(i+1)))
	}
	require.NoError(t, f.s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM gc_tombstones`).Scan(&tombs))
	require.Zero(t, tombs)

	// The same file is uploaded again: same content, same key. Then whatever the first
	// attempt's delete still had to do is done.
	obj := filesvc.Object{Bucket: f.b.Name, Path: keys[0]}
	require.NoError(t, filesvc.AddUpload(context.Background(), f.s.Pool, obj, filesvc.Row{ID: 100, Hash: "h1", Size: 101}))
	f.b.Put(t, keys[0], 101)
	close(held.release)
	<-held.done
	require.True(t, f.b.Exists(t, keys[0]), "the uploaded file's object was deleted by the first attempt's held delete")
}
