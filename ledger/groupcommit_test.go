package ledger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
)

// A request the database refuses (here a shard past the total, which only a bug upstream
// could send) fails alone; the rest of its batch is claimed, and their outcomes land.
func TestGroupCommitIsolatesARefusedRequest(t *testing.T) {
	t.Parallel()
	s := testenv.NewSchema(t)
	ctx := context.Background()
	require.NoError(t, Migrate(ctx, s.Pool))
	g := NewGroupCommit(New(s.Pool), 64, 1, nil)
	var calls []claimCall
	for i := range 6 {
		e := job.Envelope{Job: "noop", RunKey: fmt.Sprintf("ok%d", i), Trigger: job.TriggerManual,
			ScheduledAt: time.Now(), Shard: job.Shard{Total: 1}}
		if i == 3 {
			e.Shard = job.Shard{Index: 3, Total: 2}
		}
		calls = append(calls, claimCall{req: ClaimRequest{Env: e, Node: "a"}, staleAfter: time.Minute})
	}
	// The batch as one statement is refused...
	_, err := g.ClaimRuns(ctx, time.Minute, []ClaimRequest{calls[2].req, calls[3].req})
	require.ErrorContains(t, err, "job_runs_shard_check")

	// ...so the group commit retries it request by request.
	res, err := g.flushClaims(ctx, calls)
	require.NoError(t, err)
	var finishes []FinishRequest
	for i, r := range res {
		if i == 3 {
			require.ErrorContains(t, r.Err, "job_runs_shard_check")
			continue
		}
		require.NoError(t, r.Err)
		require.Equal(t, Claimed, r.Claim.Outcome)
		finishes = append(finishes, FinishRequest{Claim: r.Claim, Outcome: Outcome{Status: StatusSucceeded}})
	}
	errs, err := g.flushFinishes(ctx, finishes)
	require.NoError(t, err)
	for _, e := range errs {
		require.NoError(t, e)
	}
	var n int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM job_runs WHERE status = 'succeeded'`).Scan(&n))
	require.Equal(t, 5, n)
}

func TestRejectedByServerTellsRefusalsFromOutages(t *testing.T) {
	t.Parallel()
	s := testenv.NewSchema(t)
	_, err := s.Pool.Exec(context.Background(), `SELECT 1/0`)
	require.True(t, rejectedByServer(fmt.Errorf("wrapped: %w", err)))
	require.False(t, rejectedByServer(context.DeadlineExceeded))
}
