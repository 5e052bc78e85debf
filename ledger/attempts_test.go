package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/ledger"
)

// A run whose first attempt ends it is one row: nothing goes to job_past_attempts, and the
// attempt is still listed with its node, outcome and times.
func TestFirstAttemptLivesInTheRunRow(t *testing.T) {
	t.Parallel()
	l, s := newLedger(t)
	ctx := context.Background()
	c, err := l.ClaimRun(ctx, env("one"), "a", "m1", time.Minute)
	require.NoError(t, err)
	require.Equal(t, []string{"1:a:running"}, outcomes(t, l, c.RunID))
	require.NoError(t, l.Finish(ctx, c, ledger.Outcome{Status: ledger.StatusSucceeded}))

	var past int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM job_past_attempts`).Scan(&past))
	require.Zero(t, past)
	atts, err := l.Attempts(ctx, c.RunID)
	require.NoError(t, err)
	require.Len(t, atts, 1)
	run, err := l.GetRun(ctx, c.RunID)
	require.NoError(t, err)
	require.Equal(t, ledger.Attempt{Attempt: 1, Node: "a", MsgID: "m1", StartedAt: *run.StartedAt,
		FinishedAt: run.FinishedAt, Outcome: "succeeded"}, atts[0])
}

// Every attempt of a run retried, taken over and finally skipped stays listed with its own
// node, outcome and error, and outcomes stay fenced by attempt number.
func TestEveryAttemptStaysVisible(t *testing.T) {
	t.Parallel()
	l, s := newLedger(t)
	ctx := context.Background()
	e := env("many")
	c1, err := l.ClaimRun(ctx, e, "a", "m1", time.Minute)
	require.NoError(t, err)
	require.NoError(t, l.Finish(ctx, c1, ledger.Outcome{Status: ledger.StatusRetrying, Err: errors.New("flaky")}))
	c2, err := l.ClaimRun(ctx, e, "b", "m2", time.Minute)
	require.NoError(t, err)
	require.Equal(t, 2, c2.Attempt)
	// b vanishes: its heartbeat goes stale and c takes the run over.
	_, err = s.Pool.Exec(ctx, `UPDATE job_runs SET heartbeat_at = now() - interval '1 hour' WHERE id = $1`, c2.RunID)
	require.NoError(t, err)
	c3, err := l.ClaimRun(ctx, e, "c", "m3", time.Minute)
	require.NoError(t, err)
	require.Equal(t, ledger.Claimed, c3.Outcome)
	require.ErrorIs(t, l.Finish(ctx, c2, ledger.Outcome{Status: ledger.StatusSucceeded}), ledger.ErrLostClaim)
	require.NoError(t, l.Finish(ctx, c3, ledger.Outcome{Status: ledger.StatusRetrying, Err: errors.New("again")}))
	// The overlap policy skips the retry: attempt 3 keeps its own outcome.
	require.NoError(t, l.RecordSkipped(ctx, e, "d", map[string]string{"reason": "overlap"}))

	atts, err := l.Attempts(ctx, c1.RunID)
	require.NoError(t, err)
	type seen struct {
		n                    int
		node, outcome, error string
		finished             bool
	}
	var got []seen
	for _, a := range atts {
		got = append(got, seen{a.Attempt, a.Node, a.Outcome, a.Error, a.FinishedAt != nil})
	}
	require.Equal(t, []seen{{1, "a", "retrying", "flaky", true}, {2, "b", "abandoned", "", true},
		{3, "c", "retrying", "again", true}}, got)
	run, err := l.GetRun(ctx, c1.RunID)
	require.NoError(t, err)
	require.Equal(t, ledger.StatusSkipped, run.Status)
}

// Migration 00050 keeps what an older release recorded: finished attempts stay as they were,
// an attempt still running is then finished through its run row, and a run left running by
// a vanished node is taken over with its attempt closed as abandoned.
func TestMigrationKeepsRecordedAttempts(t *testing.T) {
	t.Parallel()
	s := ledger.NewOldSchema(t)
	ctx := context.Background()
	var retried, live, dead int64
	insertRun := func(key, status string, attempt int, heartbeat string) int64 {
		var id int64
		require.NoError(t, s.QueryRow(ctx, `INSERT INTO job_runs (job, run_key, trigger, scheduled_at, status, attempt,
			node, started_at, heartbeat_at, error) VALUES ('noop', $1, 'manual', now(), $2, $3, 'old', now(), `+heartbeat+`, '')
			RETURNING id`, key, status, attempt).Scan(&id))
		return id
	}
	attempt := func(id int64, n int, node, outcome, errText string) {
		_, err := s.Exec(ctx, `INSERT INTO job_attempts (run_id, attempt, node, started_at, finished_at, outcome, error)
			VALUES ($1, $2, $3, now(), CASE WHEN $4 = 'running' THEN NULL ELSE now() END, $4, $5)`, id, n, node, outcome, errText)
		require.NoError(t, err)
	}
	retried = insertRun("retried", "succeeded", 2, "now()")
	attempt(retried, 1, "x", "retrying", "flaky")
	attempt(retried, 2, "old", "succeeded", "")
	live = insertRun("live", "running", 1, "now()")
	attempt(live, 1, "old", "running", "")
	dead = insertRun("dead", "running", 1, "now() - interval '1 hour'")
	attempt(dead, 1, "old", "running", "")

	require.NoError(t, ledger.Migrate(ctx, s))
	l := ledger.New(s)
	require.Equal(t, []string{"1:x:retrying", "2:old:succeeded"}, outcomes(t, l, retried))
	require.Equal(t, []string{"1:old:running"}, outcomes(t, l, live))
	require.NoError(t, l.Finish(ctx, ledger.Claim{RunID: live, Attempt: 1}, ledger.Outcome{Status: ledger.StatusSucceeded}))
	require.Equal(t, []string{"1:old:succeeded"}, outcomes(t, l, live))
	c, err := l.ClaimRun(ctx, env("dead"), "new", "m", time.Minute)
	require.NoError(t, err)
	require.Equal(t, ledger.Claim{Outcome: ledger.Claimed, RunID: dead, Attempt: 2, Status: ledger.StatusRunning}, c)
	require.Equal(t, []string{"1:old:abandoned", "2:new:running"}, outcomes(t, l, dead))
}
