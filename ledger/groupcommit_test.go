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
	_, err := g.Ledger.ClaimRuns(ctx, time.Minute, []ClaimRequest{calls[2].req, calls[3].req})
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

// A batch of deliveries claimed through the group commit at once: each gets its own answer,
// a refused request fails alone, and a second delivery of a run in the batch finds it held.
func TestGroupCommitClaimsADeliveredBatch(t *testing.T) {
	t.Parallel()
	s := testenv.NewSchema(t)
	ctx := context.Background()
	require.NoError(t, Migrate(ctx, s.Pool))
	g := NewGroupCommit(New(s.Pool), 4, 2, nil)
	var reqs []ClaimRequest
	for i := range 10 {
		e := job.Envelope{Job: "noop", RunKey: fmt.Sprintf("b%d", i), Trigger: job.TriggerManual,
			ScheduledAt: time.Now(), Shard: job.Shard{Total: 1}}
		if i == 3 {
			e.Shard = job.Shard{Index: 3, Total: 2}
		}
		reqs = append(reqs, ClaimRequest{Env: e, Node: "a", MsgID: fmt.Sprintf("m%d", i)})
	}
	reqs = append(reqs, reqs[5]) // the broker delivered b5 twice
	res, err := g.ClaimRuns(ctx, time.Minute, InTurn, reqs)
	require.NoError(t, err)
	require.Len(t, res, len(reqs))
	ids := map[int64]bool{}
	outcomes := map[ClaimOutcome]int{}
	for i, r := range res {
		if i == 3 {
			require.ErrorContains(t, r.Err, "job_runs_shard_check")
			continue
		}
		require.NoError(t, r.Err)
		outcomes[r.Claim.Outcome]++
		ids[r.Claim.RunID] = true
	}
	require.Len(t, ids, 9, "one run per distinct key")
	// The two deliveries of b5 may sit in different statements, in either order: one holds
	// the run, the other finds it held.
	require.Equal(t, map[ClaimOutcome]int{Claimed: 9, HeldElsewhere: 1}, outcomes)
	require.NotEqual(t, res[5].Claim.Outcome, res[10].Claim.Outcome)
}

func TestRejectedByServerTellsRefusalsFromOutages(t *testing.T) {
	t.Parallel()
	s := testenv.NewSchema(t)
	_, err := s.Pool.Exec(context.Background(), `SELECT 1/0`)
	require.True(t, rejectedByServer(fmt.Errorf("wrapped: %w", err)))
	require.False(t, rejectedByServer(context.DeadlineExceeded))
}
