package handlers

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

func TestRetentionConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, RetentionConfig{}.WithDefaults().Validate())
	for key, c := range map[string]RetentionConfig{
		"runs":       {Runs: 30 * time.Minute},
		"gc_log":     {GCLog: time.Hour},
		"batch_size": {BatchSize: -1},
		"pause":      {Pause: time.Hour},
	} {
		require.ErrorContains(t, c.WithDefaults().Validate(), key)
	}
	require.Error(t, (&RetentionArgs{MaxBatches: -1}).Validate())
}

// seedRuns inserts n finished runs created age ago, each with an attempt.
func seedRuns(t *testing.T, s *testenv.Schema, n int, age time.Duration, status string) {
	t.Helper()
	_, err := s.Pool.Exec(context.Background(), `INSERT INTO job_runs (job, run_key, trigger, scheduled_at, status, created_at)
		SELECT 'noop', $4 || g, 'manual', now() - $2::interval, $3, now() - $2::interval FROM generate_series(1, $1) g`,
		n, age.String(), status, status+age.String())
	require.NoError(t, err)
}

func count(t *testing.T, s *testenv.Schema, q string) int {
	t.Helper()
	var n int
	require.NoError(t, s.Pool.QueryRow(context.Background(), q).Scan(&n))
	return n
}

// cancelAfter cancels the run's context once the n-th batch has been deleted, the way an
// operator's cancel or a node's shutdown would reach the handler mid-way.
type cancelAfter struct {
	l      *ledger.Ledger
	n      int32
	calls  atomic.Int32
	cancel context.CancelFunc
}

func (c *cancelAfter) PruneBatch(ctx context.Context, t ledger.PruneTarget, cutoff time.Time, limit int) (int64, error) {
	got, err := c.l.PruneBatch(ctx, t, cutoff, limit)
	if c.calls.Add(1) == c.n {
		c.cancel()
	}
	return got, err
}

func TestRetentionCancelledMidwayResumesNextRun(t *testing.T) {
	t.Parallel()
	s := testenv.NewSchema(t)
	ctx := context.Background()
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	seedRuns(t, s, 250, 40*24*time.Hour, "succeeded")
	seedRuns(t, s, 30, 40*24*time.Hour, "running") // under way: never pruned
	seedRuns(t, s, 40, 2*24*time.Hour, "failed")   // recent: kept
	l := ledger.New(s.Pool)
	cfg := RetentionConfig{BatchSize: 100, Pause: time.Millisecond}

	runCtx, cancel := context.WithCancel(ctx)
	pr := &cancelAfter{l: l, n: 2, cancel: cancel}
	h, err := NewRetention(pr, cfg, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	res, err := h.Run(runCtx, &job.Run[RetentionArgs]{})
	require.True(t, errors.Is(err, context.Canceled), "cancelled mid-way: %v", err)
	r := res.(RetentionResult)
	require.EqualValues(t, 200, r.Deleted, "two whole batches went, nothing half")
	require.Equal(t, 50+30+40, count(t, s, `SELECT count(*) FROM job_runs`))

	// The next run carries on where the cancelled one stopped.
	h, err = NewRetention(l, cfg, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	res, err = h.Run(ctx, &job.Run[RetentionArgs]{})
	require.NoError(t, err)
	r = res.(RetentionResult)
	require.EqualValues(t, 50, r.Deleted)
	require.True(t, r.Targets[0].Done)
	require.Equal(t, 30, count(t, s, `SELECT count(*) FROM job_runs WHERE status = 'running'`))
	require.Equal(t, 40, count(t, s, `SELECT count(*) FROM job_runs WHERE status = 'failed'`))
}

func TestRetentionMaxBatchesCapsARun(t *testing.T) {
	t.Parallel()
	s := testenv.NewSchema(t)
	ctx := context.Background()
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	seedRuns(t, s, 35, 31*24*time.Hour, "failed")
	h, err := NewRetention(ledger.New(s.Pool), RetentionConfig{BatchSize: 10, Pause: time.Millisecond}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	res, err := h.Run(ctx, &job.Run[RetentionArgs]{Args: RetentionArgs{MaxBatches: 2}})
	require.NoError(t, err)
	require.EqualValues(t, 20, res.(RetentionResult).Deleted)
	require.False(t, res.(RetentionResult).Targets[0].Done)
	require.Equal(t, 15, count(t, s, `SELECT count(*) FROM job_runs`))
}
