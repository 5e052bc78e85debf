package handlers

import (
	"context"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/filereap"
	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
)

// cutInS3 is an S3 whose multi-delete ends the run (a drain, a lost claim, a kill as far as
// the run can tell) before answering: the batch's rows stay tombstones.
type cutInS3 struct {
	filereap.ObjectStore
	cancel context.CancelFunc
}

func (c cutInS3) RemoveObjectsWithResult(context.Context, string, <-chan minio.ObjectInfo, minio.RemoveObjectsOptions) <-chan minio.RemoveObjectResult {
	c.cancel()
	out := make(chan minio.RemoveObjectResult)
	close(out)
	return out
}

// TestFileGCRetryFinishesItsDeadAttemptsTombstones: the retry of a sweep cut in its S3 phase
// finishes the tombstones its earlier attempt left at once, although they are younger than
// s3_timeout (another run's young tombstones are still left alone: that run may be in S3).
func TestFileGCRetryFinishesItsDeadAttemptsTombstones(t *testing.T) {
	f := newGCFixture(t)
	var keys []string
	for id := int64(1); id <= 5; id++ {
		keys = append(keys, f.file(t, id, 2, 0, 2*day, true))
	}
	cfg := FileGCConfig{BatchSize: 2}
	cfg.S3Timeout = 10 * time.Minute // ten minutes: age alone would leave the tombstones for the next day's run
	first, cancel := context.WithCancel(context.Background())
	defer cancel()
	g1, err := NewFileGC(f.s.Pool, cutInS3{ObjectStore: f.b.Client, cancel: cancel}, cfg, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	run := f.runRow(t, job.Shard{Index: 0, Total: 1})
	run.Attempt = 1
	_, err = handlertest.Run(first, g1, run)
	require.Error(t, err)
	var tombs int
	require.NoError(t, f.s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM file_metadata WHERE status = 3`).Scan(&tombs))
	require.Equal(t, 2, tombs, "the first batch is tombstoned, its objects not deleted")

	run.Attempt = 2
	out, err := handlertest.Run(context.Background(), f.handler(t, cfg), run)
	require.NoError(t, err)
	res := out.(FileGCResult)
	require.Equal(t, 2, res.Resumed, "the dead attempt's tombstones, finished at once")
	require.Equal(t, 5, res.DeletedRows)
	for i, k := range keys {
		require.False(t, f.b.Exists(t, k), k)
		require.False(t, f.rowExists(t, int64(i+1)))
	}
	require.NoError(t, f.s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM gc_tombstones`).Scan(&tombs))
	require.Zero(t, tombs)
}
