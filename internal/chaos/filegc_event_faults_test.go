package chaos_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/filegc"
	"github.com/chatplat/job-service/filereap"
	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
)

// nopPublisher: every event in these tests is past its grace, nothing is deferred.
type nopPublisher struct{}

func (nopPublisher) PublishRaw(context.Context, string, string, []string, []byte, time.Time) (string, error) {
	return "", fmt.Errorf("nothing should be deferred")
}

// The event GC meets the same faults in its S3 phase: a batch cancelled while its
// multi-delete is at the server (a drain), then one whose answer stalls past s3_timeout. Each
// time every row keeps the promise; the redelivered batch finishes its own tombstones at
// once, without waiting for the daily sweep.
func TestFileEventGCFaultsInS3PhaseLeaveNoReReferenceableRowWithoutObject(t *testing.T) {
	t.Parallel()
	g, l := newGCTable(t)
	p := startProxy(t)
	cfg := filegc.Config{Enabled: true, Grace: time.Second, ReaperOptions: filereap.ReaperOptions{S3Timeout: time.Second}}.WithDefaults()
	require.NoError(t, cfg.Validate())
	reaper := filereap.NewReaper(g.pool, testenv.S3Client(t, p.Endpoint), filereap.FileTable{}.WithDefaults(), cfg.ReaperOptions,
		testenv.Logger(t))
	proc := filegc.NewProcessor(cfg, reaper, nopPublisher{}, l, "test", nil, time.Now, testenv.Logger(t))
	at := time.Now().Add(-time.Minute).UTC() // after the rows' updated_at, past the grace
	var batch []filegc.Delivery
	for id := int64(1); id <= gcCollectable; id++ {
		body, err := filegc.Encode(filegc.Event{FileID: id, FileHash: fmt.Sprintf("h%d", id), Bucket: g.b.Name,
			ObjectPath: gcKey(id), EventTime: at}, time.Now())
		require.NoError(t, err)
		batch = append(batch, filegc.Delivery{Body: body, MsgID: fmt.Sprintf("m%d", id), Tag: cfg.Tag})
	}

	// A drain cancels the batch while the server deletes its keys.
	p.SetMode(chaos.S3StallAfterDelete)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-p.Stalled():
			cancel()
		case <-time.After(time.Minute):
		}
	}()
	v := proc.Process(ctx, batch[:20])
	cancel()
	require.True(t, v.Retry, "the batch is redelivered")
	tomb := g.invariant(t)
	require.Positive(t, tomb)
	t.Logf("event batch cancelled in the S3 phase: %d tombstones, invariant holds", tomb)

	// The rest meets an S3 that deletes, then does not answer within s3_timeout.
	v = proc.Process(context.Background(), batch[20:])
	require.True(t, v.Retry)
	tomb = g.invariant(t)
	require.Positive(t, tomb)
	t.Logf("event batch timed out after S3 deleted: %d tombstones in all, invariant holds", tomb)

	// The redeliveries, S3 healthy: tombstones are finished at once, each file logged once.
	p.SetMode(chaos.S3Pass)
	p.Release()
	start := time.Now()
	require.False(t, proc.Process(context.Background(), batch[:20]).Retry)
	require.False(t, proc.Process(context.Background(), batch[20:]).Retry)
	g.collected(t)
	runs, err := l.ListRuns(context.Background(), ledger.RunFilter{Job: filegc.JobName, Status: ledger.StatusSucceeded})
	require.NoError(t, err)
	require.Len(t, runs, 2, "one succeeded record per redelivered batch")
	t.Logf("redelivered batches finished the tombstones in %s", time.Since(start).Round(time.Millisecond))
}
