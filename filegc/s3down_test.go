package filegc_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/filegc"
	"github.com/chatplat/job-service/filereap"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/mq"
)

// dyingStore passes the first `after` keys to S3, then stops the server and passes the rest:
// S3 dies in the middle of a batch.
type dyingStore struct {
	*minio.Client
	mu      sync.Mutex
	after   int
	passed  int
	stopped bool
	stop    func()
}

func (d *dyingStore) RemoveObjectsWithResult(ctx context.Context, bucket string, objects <-chan minio.ObjectInfo,
	opts minio.RemoveObjectsOptions) <-chan minio.RemoveObjectResult {
	var all []minio.ObjectInfo
	for o := range objects {
		all = append(all, o)
	}
	out := make(chan minio.RemoveObjectResult, len(all))
	feed := func(objs []minio.ObjectInfo) {
		ch := make(chan minio.ObjectInfo, len(objs))
		for _, o := range objs {
			ch <- o
		}
		close(ch)
		for r := range d.Client.RemoveObjectsWithResult(ctx, bucket, ch, opts) {
			out <- r
		}
	}
	go func() {
		defer close(out)
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.stopped {
			feed(all) // S3 is down, or back
			return
		}
		split := min(len(all), d.after-d.passed)
		feed(all[:split])
		d.passed += split
		if d.passed >= d.after {
			d.stop()
			d.stopped = true
		}
		feed(all[split:])
	}()
	return out
}

func TestS3StoppedMidBatchLosesNothingAndCompletesAfterS3Returns(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	ctx := context.Background()
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	s3 := testenv.StartPrivateS3(t)
	b := s3.NewBucket(t)
	m := testenv.NewMQ(t, 1) // one queue: the due events come back in one batch
	topic := testenv.NewTopic(t, m.Config, "F_")
	log := testenv.Logger(t)

	const n = 10
	for id := int64(1); id <= n; id++ {
		b.Put(t, fmt.Sprintf("obj/%d", id), 10)
		_, err := s.Pool.Exec(ctx, `INSERT INTO file_metadata (id, file_hash, bucket, object_path, size_bytes, ref_count,
			status, updated_at) VALUES ($1, 'h', $2, $3, 10, 0, 2, now() - interval '1 second')`, id, b.Name, fmt.Sprintf("obj/%d", id))
		require.NoError(t, err)
	}
	cfg := filegc.Config{Enabled: true, Topic: topic, Group: "g" + topic, Grace: time.Second, BatchSize: 32,
		ReaperOptions: filereap.ReaperOptions{S3Timeout: 2 * time.Second}}.WithDefaults()
	require.NoError(t, cfg.Validate())
	testenv.NewRetryTopic(t, m.Config, cfg.Group)
	store := &dyingStore{Client: b.Client, after: n / 2, stop: s3.Stop}
	reaper := filereap.NewReaper(s.Pool, store, filereap.FileTable{}.WithDefaults(),
		filereap.ReaperOptions{LockTimeout: time.Second, S3Timeout: cfg.S3Timeout}, log)
	prod, err := mq.NewProducer(m.Config, "s3down-"+testenv.Suffix())
	require.NoError(t, err)
	t.Cleanup(func() { _ = prod.Close() })
	l := ledger.New(s.Pool)
	proc := filegc.NewProcessor(cfg, reaper, prod, l, "test", nil, time.Now, log)
	c := filegc.NewConsumer(cfg, filegc.ConsumerOptions{NameServers: m.Config.NameServers, Instance: "s3down-" + testenv.Suffix()}, proc, log)
	require.NoError(t, c.Start(ctx))
	t.Cleanup(func() { _ = c.Stop(context.Background()) })

	at := time.Now().UTC()
	for id := int64(1); id <= n; id++ {
		body, err := filegc.Encode(filegc.Event{FileID: id, FileHash: "h", Bucket: b.Name, ObjectPath: fmt.Sprintf("obj/%d", id),
			EventTime: at}, time.Now())
		require.NoError(t, err)
		_, err = prod.PublishRaw(ctx, topic, cfg.Tag, nil, body, time.Time{})
		require.NoError(t, err)
	}
	// S3 dies mid-batch: the batch is recorded failed and redelivered (the first redelivery
	// of a new group can take a rebalance period while RocketMQ sets up its retry topic).
	testenv.Eventually(t, 60*time.Second, func() bool {
		runs, err := l.ListRuns(ctx, ledger.RunFilter{Job: filegc.JobName, Status: ledger.StatusFailed})
		require.NoError(t, err)
		return len(runs) >= 1
	}, "a failed batch while S3 is down")
	// Nothing is lost: every row still there still has its object (checked on disk, S3 is down).
	rowsLeft := 0
	for id := int64(1); id <= n; id++ {
		var exists bool
		require.NoError(t, s.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM file_metadata WHERE id = $1)`, id).Scan(&exists))
		_, statErr := os.Stat(s3.ObjectFile(b.Name, fmt.Sprintf("obj/%d", id)))
		if exists {
			rowsLeft++
			require.NoError(t, statErr, "file %d has a row but its object is gone", id)
		} else {
			require.True(t, os.IsNotExist(statErr), "file %d row deleted but object kept", id)
		}
	}
	require.Positive(t, rowsLeft, "the half after S3 died must still be there")
	require.Less(t, rowsLeft, n, "the half before S3 died was collected")
	t.Logf("%d of %d files collected before S3 died", n-rowsLeft, n)

	s3.Start()
	testenv.Eventually(t, 120*time.Second, func() bool {
		var left int
		require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM file_metadata`).Scan(&left))
		return left == 0
	}, "the batch completes after S3 returns")
	require.Zero(t, b.Count(t))
	for id := int64(1); id <= n; id++ {
		log, err := l.GCLog(ctx, ledger.GCLogFilter{FileID: id})
		require.NoError(t, err)
		require.Len(t, log, 1, "gc_log of file %d", id)
	}
}
