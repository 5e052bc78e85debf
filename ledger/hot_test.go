package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// Every update a run's life makes on job_runs (the publish mark, a take-over claim, heartbeats,
// outcomes with a result or an error) is heap-only: it changes no column an index of job_runs
// covers, and the table's fillfactor leaves the page room for the new version. A non-HOT
// update writes an entry into every index of the table, which at thousands of runs a second
// was a large part of what the ledger cost. Each run here is updated once: the versions an
// update leaves are pruned only once no snapshot older than it remains, which other sessions
// of a shared database may hold off for as long as they like.
func TestRunUpdatesAreHOT(t *testing.T) {
	l, s := newLedger(t)
	ctx := context.Background()
	const n = 40
	before := s.TableUpdates(t, "job_runs", 0)
	updates := int64(0)
	forced := func(prefix string) []ledger.ClaimRequest {
		reqs := make([]ledger.ClaimRequest, n)
		for i := range reqs {
			reqs[i] = ledger.ClaimRequest{Env: env(fmt.Sprintf("%s:%d", prefix, i)), Node: "a", MsgID: "f"}
		}
		return reqs
	}

	// Scheduled by the ticker and published, or scheduled and taken over by a claim.
	scheduled := make([]ledger.ClaimRequest, n)
	for i := range 2 * n {
		e := job.Envelope{Job: "noop", RunKey: fmt.Sprintf("sched:%d", i), Trigger: job.TriggerSchedule,
			ScheduledAt: time.Now(), Shard: job.Shard{Total: 1}}
		_, err := l.RecordScheduled(ctx, e)
		require.NoError(t, err)
		if i < n {
			require.NoError(t, l.MarkPublished(ctx, e, job.Receipt{MsgID: fmt.Sprintf("m%d", i), Broker: "broker-a", Queue: i % 4}))
			continue
		}
		scheduled[i-n] = ledger.ClaimRequest{Env: e, Node: "a", MsgID: fmt.Sprintf("m%d", i)}
	}
	claimAll(t, l, scheduled)
	updates += 2 * n

	// Claimed (by insert) and heartbeated.
	lost, err := l.Heartbeat(ctx, "a", claimAll(t, l, forced("beat")))
	require.NoError(t, err)
	require.Empty(t, lost)
	updates += n

	// Claimed and finished: succeeded with a result, or failed to be retried with an error.
	claims := claimAll(t, l, forced("done"))
	fin := make([]ledger.FinishRequest, len(claims))
	for i, c := range claims {
		o := ledger.Outcome{Status: ledger.StatusSucceeded, Result: map[string]int{"n": i}}
		if i%2 == 1 {
			o = ledger.Outcome{Status: ledger.StatusRetrying, Err: errors.New("boom")}
		}
		fin[i] = ledger.FinishRequest{Claim: c, Outcome: o}
	}
	finishAll(t, l, fin)
	updates += n

	after := s.TableUpdates(t, "job_runs", before.Updates+updates)
	require.Equal(t, updates, after.Updates-before.Updates, "updates of job_runs")
	require.Equal(t, after.Updates-before.Updates, after.HOT-before.HOT,
		"every update of job_runs HOT (%.1f%% were)", after.HOTPercentSince(before))
	require.Len(t, requireInflightExact(t, s), 3*n+n/2, "published, taken over, heartbeated and retrying runs")
}

func claimAll(t *testing.T, l *ledger.Ledger, reqs []ledger.ClaimRequest) []ledger.Claim {
	t.Helper()
	res, err := l.ClaimRuns(context.Background(), time.Minute, reqs)
	require.NoError(t, err)
	out := make([]ledger.Claim, len(res))
	for i, r := range res {
		require.NoError(t, r.Err)
		require.Equal(t, ledger.Claimed, r.Claim.Outcome, reqs[i].Env.RunKey)
		out[i] = r.Claim
	}
	return out
}

func finishAll(t *testing.T, l *ledger.Ledger, reqs []ledger.FinishRequest) {
	t.Helper()
	errs, err := l.FinishRuns(context.Background(), reqs)
	require.NoError(t, err)
	for _, e := range errs {
		require.NoError(t, e)
	}
}
