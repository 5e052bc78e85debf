package ledger_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// Claim and finish of no-op runs straight against Postgres, without the broker: the ledger's
// share of dispatch. Batches of 1, 8 and 64 on one connection, then batches of 64 from four
// connections at once, which is as fast as this Postgres can ledger runs on this machine;
// 512 is the size of the batches a batch-consuming node sends. hot_upd_% is the share of
// job_runs updates (here the outcomes) that were heap-only, writing no index entry.
func BenchmarkClaimFinish(b *testing.B) {
	s := testenv.NewSchema(b)
	ctx := context.Background()
	require.NoError(b, ledger.Migrate(ctx, s.Pool))
	l := ledger.New(s.Pool)
	var seq atomic.Int64
	cycle := func(b *testing.B, size int) {
		reqs := make([]ledger.ClaimRequest, size)
		for j := range reqs {
			reqs[j] = ledger.ClaimRequest{Node: "bench", MsgID: "m", Env: job.Envelope{Job: "noop",
				RunKey: fmt.Sprintf("bench:%d", seq.Add(1)), Trigger: job.TriggerManual, ScheduledAt: time.Now(),
				Shard: job.Shard{Total: 1}}}
		}
		claims, err := l.ClaimRuns(ctx, time.Minute, reqs)
		require.NoError(b, err)
		fin := make([]ledger.FinishRequest, size)
		for j, c := range claims {
			require.NoError(b, c.Err)
			require.Equal(b, ledger.Claimed, c.Claim.Outcome)
			fin[j] = ledger.FinishRequest{Claim: c.Claim, Outcome: ledger.Outcome{Status: ledger.StatusSucceeded}}
		}
		errs, err := l.FinishRuns(ctx, fin)
		require.NoError(b, err)
		for _, e := range errs {
			require.NoError(b, e)
		}
	}
	for _, size := range []int{1, 8, 64, 512} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			runs := 0
			from := s.TableUpdates(b, "job_runs", 0)
			for b.Loop() {
				cycle(b, size)
				runs += size
			}
			b.ReportMetric(float64(runs)/b.Elapsed().Seconds(), "runs/s")
			b.ReportMetric(s.TableUpdates(b, "job_runs", from.Updates+int64(runs)).HOTPercentSince(from), "hot_upd_%")
		})
	}
	b.Run("batch=64,connections=4", func(b *testing.B) {
		var runs atomic.Int64
		b.SetParallelism(2) // x GOMAXPROCS (2 here) goroutines, each with its connection
		from := s.TableUpdates(b, "job_runs", 0)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				cycle(b, 64)
				runs.Add(64)
			}
		})
		b.ReportMetric(float64(runs.Load())/time.Since(start).Seconds(), "runs/s")
		b.ReportMetric(s.TableUpdates(b, "job_runs", from.Updates+runs.Load()).HOTPercentSince(from), "hot_upd_%")
	})
}
