package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// Claim and finish of no-op runs straight against Postgres, in batches of 1, 8 and 64: the
// ledger's share of dispatch, without the broker.
func BenchmarkClaimFinish(b *testing.B) {
	s := testenv.NewSchema(b)
	ctx := context.Background()
	require.NoError(b, ledger.Migrate(ctx, s.Pool))
	l := ledger.New(s.Pool)
	for _, size := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			prefix := "bench:" + testenv.Suffix() + "-"
			i := 0
			runs := 0
			for b.Loop() {
				reqs := make([]ledger.ClaimRequest, size)
				for j := range reqs {
					reqs[j] = ledger.ClaimRequest{Node: "bench", MsgID: "m", Env: job.Envelope{Job: "noop",
						RunKey: fmt.Sprintf("%s%d", prefix, i), Trigger: job.TriggerManual, ScheduledAt: time.Now(),
						Shard: job.Shard{Total: 1}}}
					i++
				}
				claims, err := l.ClaimRuns(ctx, time.Minute, reqs)
				require.NoError(b, err)
				fin := make([]ledger.FinishRequest, size)
				for j, c := range claims {
					require.NoError(b, c.Err)
					fin[j] = ledger.FinishRequest{Claim: c.Claim, Outcome: ledger.Outcome{Status: ledger.StatusSucceeded}}
				}
				errs, err := l.FinishRuns(ctx, fin)
				require.NoError(b, err)
				for _, e := range errs {
					require.NoError(b, e)
				}
				runs += size
			}
			b.ReportMetric(float64(runs)/b.Elapsed().Seconds(), "runs/s")
		})
	}
}
