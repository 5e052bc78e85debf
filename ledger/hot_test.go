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

// Every update a run's life makes on job_runs (the publish mark, a take-over claim,
// heartbeats, outcomes, a retry taken over again) is heap-only: it changes no column an index
// of job_runs covers, and the table's fillfactor leaves the page room for the new version.
// A non-HOT update writes an entry into every index of the table, which at thousands of runs
// a second was a large part of what the ledger cost.
func TestRunUpdatesAreHOT(t *testing.T) {
	l, s := newLedger(t)
	ctx := context.Background()
	const n = 40
	before := s.TableUpdates(t, "job_runs", 0)
	updates := int64(0)

	// Scheduled by the ticker, published, taken over by a claim.
	scheduled := make([]ledger.ClaimRequest, n)
	for i := range scheduled {
		e := job.Envelope{Job: "noop", RunKey: fmt.Sprintf("sched:%d", i), Trigger: job.TriggerSchedule,
			ScheduledAt: time.Now(), Shard: job.Shard{Total: 1}}
		_, err := l.RecordScheduled(ctx, e)
		require.NoError(t, err)
		require.NoError(t, l.MarkPublished(ctx, e, job.Receipt{MsgID: fmt.Sprintf("m%d", i), Broker: "broker-a", Queue: i % 4}))
		scheduled[i] = ledger.ClaimRequest{Env: e, Node: "a", MsgID: fmt.Sprintf("m%d", i)}
	}
	updates += n
	// Forced: claimed by insert.
	forced := make([]ledger.ClaimRequest, n)
	for i := range forced {
		forced[i] = ledger.ClaimRequest{Env: env(fmt.Sprintf("manual:%d", i)), Node: "a", MsgID: "f"}
	}
	claims := claimAll(t, l, scheduled)
	updates += n
	claims = append(claims, claimAll(t, l, forced)...)

	lost, err := l.Heartbeat(ctx, "a", claims)
	require.NoError(t, err)
	require.Empty(t, lost)
	updates += 2 * n

	// Half the scheduled runs fail and are retried; the rest succeed.
	fin := make([]ledger.FinishRequest, len(claims))
	for i, c := range claims {
		o := ledger.Outcome{Status: ledger.StatusSucceeded, Result: map[string]int{"n": i}}
		if i < n/2 {
			o = ledger.Outcome{Status: ledger.StatusRetrying, Err: errors.New("boom")}
		}
		fin[i] = ledger.FinishRequest{Claim: c, Outcome: o}
	}
	finishAll(t, l, fin)
	updates += 2 * n
	again := claimAll(t, l, scheduled[:n/2])
	updates += n / 2
	fin = fin[:0]
	for _, c := range again {
		fin = append(fin, ledger.FinishRequest{Claim: c, Outcome: ledger.Outcome{Status: ledger.StatusSucceeded}})
	}
	finishAll(t, l, fin)
	updates += n / 2

	after := s.TableUpdates(t, "job_runs", before.Updates+updates)
	require.Equal(t, updates, after.Updates-before.Updates, "updates of job_runs")
	require.Equal(t, after.Updates-before.Updates, after.HOT-before.HOT,
		"every update of job_runs HOT (%.1f%% were)", after.HOTPercentSince(before))
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
