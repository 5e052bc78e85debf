package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

func newLedger(t testing.TB) (*ledger.Ledger, *testenv.Schema) {
	t.Helper()
	s := testenv.NewSchema(t)
	require.NoError(t, ledger.Migrate(context.Background(), s.Pool))
	return ledger.New(s.Pool), s
}

func env(runKey string) job.Envelope {
	return job.Envelope{Job: "noop", RunKey: runKey, Trigger: job.TriggerManual, ScheduledAt: time.Now(),
		Shard: job.Shard{Total: 1}, Params: json.RawMessage(`{"n":1}`)}
}

func outcomes(t *testing.T, l *ledger.Ledger, runID int64) []string {
	t.Helper()
	atts, err := l.Attempts(context.Background(), runID)
	require.NoError(t, err)
	var out []string
	for _, a := range atts {
		out = append(out, fmt.Sprintf("%d:%s:%s", a.Attempt, a.Node, a.Outcome))
	}
	return out
}

// One batch holding every case a claim can meet gets, for each request, the answer it
// would have got alone, and leaves the attempt rows a one-by-one claim leaves.
func TestClaimRunsAnswersEachRequestAsIfAlone(t *testing.T) {
	t.Parallel()
	l, s := newLedger(t)
	ctx := context.Background()
	const stale = time.Minute
	claim := func(e job.Envelope, node string) ledger.Claim {
		c, err := l.ClaimRun(ctx, e, node, "m-"+node, stale)
		require.NoError(t, err)
		require.Equal(t, ledger.Claimed, c.Outcome)
		return c
	}
	done, held, dead, retry := env("done"), env("held"), env("dead"), env("retry")
	require.NoError(t, l.Finish(ctx, claim(done, "a"), ledger.Outcome{Status: ledger.StatusSucceeded}))
	heldClaim := claim(held, "a")
	deadClaim := claim(dead, "a")
	_, err := s.Pool.Exec(ctx, `UPDATE job_runs SET heartbeat_at = now() - interval '1 hour' WHERE id = $1`, deadClaim.RunID)
	require.NoError(t, err)
	require.NoError(t, l.Finish(ctx, claim(retry, "a"), ledger.Outcome{Status: ledger.StatusRetrying, Err: errors.New("flaky")}))
	fresh := env("fresh")

	res, err := l.ClaimRuns(ctx, stale, []ledger.ClaimRequest{
		{Env: fresh, Node: "b", MsgID: "m1"},
		{Env: done, Node: "b", MsgID: "m2"},
		{Env: held, Node: "b", MsgID: "m3"},
		{Env: dead, Node: "b", MsgID: "m4"},
		{Env: retry, Node: "b", MsgID: "m5"},
		{Env: fresh, Node: "b", MsgID: "m6"}, // a second delivery of the run claimed first
	})
	require.NoError(t, err)
	require.Len(t, res, 6)
	for _, r := range res {
		require.NoError(t, r.Err)
	}
	require.Equal(t, ledger.Claimed, res[0].Claim.Outcome)
	require.Equal(t, 1, res[0].Claim.Attempt)
	require.Equal(t, ledger.AlreadyDone, res[1].Claim.Outcome)
	require.Equal(t, ledger.StatusSucceeded, res[1].Claim.Status)
	require.Equal(t, ledger.HeldElsewhere, res[2].Claim.Outcome)
	require.Equal(t, heldClaim.RunID, res[2].Claim.RunID)
	require.Equal(t, ledger.Claimed, res[3].Claim.Outcome, "a stale running run is taken over")
	require.Equal(t, 2, res[3].Claim.Attempt)
	require.Equal(t, ledger.Claimed, res[4].Claim.Outcome)
	require.Equal(t, 2, res[4].Claim.Attempt)
	require.Equal(t, ledger.HeldElsewhere, res[5].Claim.Outcome, "the repeat finds the run held by the first")
	require.Equal(t, res[0].Claim.RunID, res[5].Claim.RunID)

	require.Equal(t, []string{"1:a:abandoned", "2:b:running"}, outcomes(t, l, res[3].Claim.RunID))
	require.Equal(t, []string{"1:a:retrying", "2:b:running"}, outcomes(t, l, res[4].Claim.RunID))
	require.Equal(t, []string{"1:b:running"}, outcomes(t, l, res[0].Claim.RunID))
	run, err := l.GetRun(ctx, res[0].Claim.RunID)
	require.NoError(t, err)
	require.Equal(t, "m1", run.MsgID)
	require.JSONEq(t, `{"n":1}`, string(run.Params))
}

// Outcomes of one batch are fenced each by its own attempt: the one taken over is lost, the
// others land with their results and errors, and a repeat of an outcome is lost too.
func TestFinishRunsFencesEachAttempt(t *testing.T) {
	t.Parallel()
	l, s := newLedger(t)
	ctx := context.Background()
	var claims []ledger.Claim
	for i := range 3 {
		c, err := l.ClaimRun(ctx, env(fmt.Sprintf("f%d", i)), "a", "", time.Minute)
		require.NoError(t, err)
		claims = append(claims, c)
	}
	// Node b takes run 1 over (a looked dead).
	_, err := s.Pool.Exec(ctx, `UPDATE job_runs SET heartbeat_at = now() - interval '1 hour' WHERE id = $1`, claims[1].RunID)
	require.NoError(t, err)
	_, err = l.ClaimRun(ctx, env("f1"), "b", "", time.Minute)
	require.NoError(t, err)

	errs, err := l.FinishRuns(ctx, []ledger.FinishRequest{
		{Claim: claims[0], Outcome: ledger.Outcome{Status: ledger.StatusSucceeded, Result: map[string]int{"deleted": 4}}},
		{Claim: claims[1], Outcome: ledger.Outcome{Status: ledger.StatusSucceeded}},
		{Claim: claims[2], Outcome: ledger.Outcome{Status: ledger.StatusFailed, Err: errors.New("s3 down")}},
		{Claim: claims[0], Outcome: ledger.Outcome{Status: ledger.StatusFailed}}, // repeat
		{Claim: claims[2], Outcome: ledger.Outcome{Status: ledger.StatusSucceeded, Result: func() {}}},
	})
	require.NoError(t, err)
	require.NoError(t, errs[0])
	require.ErrorIs(t, errs[1], ledger.ErrLostClaim)
	require.NoError(t, errs[2])
	require.ErrorIs(t, errs[3], ledger.ErrLostClaim, "the first outcome stands")
	require.ErrorContains(t, errs[4], "encode result")

	r0, err := l.GetRun(ctx, claims[0].RunID)
	require.NoError(t, err)
	require.Equal(t, ledger.StatusSucceeded, r0.Status)
	require.JSONEq(t, `{"deleted":4}`, string(r0.Result))
	require.NotNil(t, r0.FinishedAt)
	r1, err := l.GetRun(ctx, claims[1].RunID)
	require.NoError(t, err)
	require.Equal(t, ledger.StatusRunning, r1.Status, "b's attempt is untouched")
	require.Equal(t, "b", r1.Node)
	r2, err := l.GetRun(ctx, claims[2].RunID)
	require.NoError(t, err)
	require.Equal(t, ledger.StatusFailed, r2.Status)
	require.Equal(t, "s3 down", r2.Error)
	require.Equal(t, []string{"1:a:failed"}, outcomes(t, l, claims[2].RunID))
	require.Equal(t, []string{"1:a:abandoned", "2:b:running"}, outcomes(t, l, claims[1].RunID))
}

// Many goroutines delivering the same runs at once through the group commit: each run is
// claimed exactly once, every other delivery finds it held, and every outcome lands.
func TestGroupCommitClaimsEachRunOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	l, s := newLedger(t)
	g := ledger.NewGroupCommit(l, 16, 2, nil)
	ctx := context.Background()
	const runs, copies = 60, 4
	var mu sync.Mutex
	claimed := map[string][]ledger.Claim{}
	held := 0
	var wg sync.WaitGroup
	for c := range copies {
		for i := range runs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := fmt.Sprintf("g%d", i)
				cl, err := g.ClaimRun(ctx, env(key), fmt.Sprintf("n%d", c), "", time.Minute, ledger.InTurn)
				require.NoError(t, err)
				mu.Lock()
				defer mu.Unlock()
				switch cl.Outcome {
				case ledger.Claimed:
					claimed[key] = append(claimed[key], cl)
				case ledger.HeldElsewhere:
					held++
				default:
					t.Errorf("unexpected outcome %v for %s", cl.Outcome, key)
				}
			}()
		}
	}
	wg.Wait()
	require.Len(t, claimed, runs)
	for key, cs := range claimed {
		require.Len(t, cs, 1, "run %s claimed more than once", key)
	}
	require.Equal(t, runs*(copies-1), held)

	for _, cs := range claimed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(t, g.Finish(ctx, cs[0], ledger.Outcome{Status: ledger.StatusSucceeded}, ledger.InTurn))
		}()
	}
	wg.Wait()
	var succeeded, attempts int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'succeeded'),
		(SELECT count(*) FROM job_attempts WHERE outcome = 'succeeded') FROM job_runs`).Scan(&succeeded, &attempts))
	require.Equal(t, runs, succeeded)
	require.Equal(t, runs, attempts)
}
