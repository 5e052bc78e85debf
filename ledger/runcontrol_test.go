package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// A cancel on a running run waits for its node (the heartbeat's sync returns it), which
// records it cancelled; a cancel on a run not running ends it at once and its message, when
// it comes, finds it finished; a finished run cannot be cancelled.
func TestCancelRunningWaitsForTheNodeOthersEndAtOnce(t *testing.T) {
	t.Parallel()
	l, s := newLedger(t)
	ctx := context.Background()

	c, err := l.ClaimRun(ctx, env("running"), "a", "m1", time.Minute)
	require.NoError(t, err)
	st, err := l.RequestCancel(ctx, c.RunID, "alice")
	require.NoError(t, err)
	require.Equal(t, ledger.StatusRunning, st)
	cancels, err := l.SyncRuns(ctx, []int64{c.RunID}, nil)
	require.NoError(t, err)
	require.Equal(t, map[int64]string{c.RunID: "alice"}, cancels)
	require.NoError(t, l.Finish(ctx, c, ledger.Outcome{Status: ledger.StatusCancelled, Err: &ledger.CancelledError{By: "alice"}}))
	r, err := l.GetRun(ctx, c.RunID)
	require.NoError(t, err)
	require.Equal(t, ledger.StatusCancelled, r.Status)
	require.Equal(t, "cancelled by alice", r.Error)
	require.NotNil(t, r.FinishedAt)
	require.Equal(t, []string{"1:a:cancelled"}, outcomes(t, l, c.RunID))
	_, err = l.RequestCancel(ctx, c.RunID, "bob")
	require.ErrorIs(t, err, ledger.ErrNotCancellable)
	_, err = l.RequestCancel(ctx, 1<<40, "bob")
	require.ErrorIs(t, err, ledger.ErrNotFound)

	retrying := env("retrying")
	c2, err := l.ClaimRun(ctx, retrying, "a", "m2", time.Minute)
	require.NoError(t, err)
	require.NoError(t, l.Finish(ctx, c2, ledger.Outcome{Status: ledger.StatusRetrying, Err: errors.New("flaky")}))
	st, err = l.RequestCancel(ctx, c2.RunID, "alice")
	require.NoError(t, err)
	require.Equal(t, ledger.StatusCancelled, st)
	again, err := l.ClaimRun(ctx, retrying, "b", "m2", time.Minute)
	require.NoError(t, err)
	require.Equal(t, ledger.AlreadyDone, again.Outcome, "the redelivered message finds it cancelled")

	// A running run whose node vanished before it saw the request: the reaper ends it
	// cancelled instead of publishing it again, and no claim takes it meanwhile.
	gone := env("gone")
	c3, err := l.ClaimRun(ctx, gone, "a", "m3", time.Minute)
	require.NoError(t, err)
	_, err = l.RequestCancel(ctx, c3.RunID, "carol")
	require.NoError(t, err)
	_, err = s.Pool.Exec(ctx, `UPDATE job_runs SET heartbeat_at = now() - interval '1 hour' WHERE id = $1`, c3.RunID)
	require.NoError(t, err)
	taken, err := l.ClaimRun(ctx, gone, "b", "m3", time.Minute)
	require.NoError(t, err)
	require.NotEqual(t, ledger.Claimed, taken.Outcome)
	reaped, err := l.ReapStale(ctx, time.Minute, 100)
	require.NoError(t, err)
	require.Empty(t, reaped, "nothing to republish")
	r, err = l.GetRun(ctx, c3.RunID)
	require.NoError(t, err)
	require.Equal(t, ledger.StatusCancelled, r.Status)
	require.Equal(t, "cancelled by carol", r.Error)
	require.Equal(t, []string{"1:a:cancelled"}, outcomes(t, l, c3.RunID))
}

// Lines are written per heartbeat batch; lines the bound pushed out are deleted and the gap
// before an attempt's first kept line is reported as dropped.
func TestRunLogsKeepTheBoundedTailAndMarkTheCut(t *testing.T) {
	t.Parallel()
	l, _ := newLedger(t)
	ctx := context.Background()
	c, err := l.ClaimRun(ctx, env("logs"), "a", "m1", time.Minute)
	require.NoError(t, err)
	line := func(seq int, msg string) ledger.LogLine {
		return ledger.LogLine{Seq: seq, At: time.Now(), Level: "INFO", Msg: msg, Attrs: "k=v"}
	}
	_, err = l.SyncRuns(ctx, []int64{c.RunID}, []ledger.LogBatch{{RunID: c.RunID, Attempt: 1, FirstSeq: 1,
		Lines: []ledger.LogLine{line(1, "one"), line(2, "two\x00nul"), line(3, "three")}}})
	require.NoError(t, err)
	page, err := l.RunLogs(ctx, c.RunID, 0, 0)
	require.NoError(t, err)
	require.Len(t, page.Lines, 3)
	require.Empty(t, page.Dropped)
	require.Equal(t, "two\uFFFDnul", page.Lines[1].Msg, "a NUL byte is stored, not refused")

	// The buffer dropped lines 1-3 and 4 since; it now keeps 5-6.
	_, err = l.SyncRuns(ctx, nil, []ledger.LogBatch{{RunID: c.RunID, Attempt: 1, FirstSeq: 5,
		Lines: []ledger.LogLine{line(5, "five"), line(6, "six")}}})
	require.NoError(t, err)
	page2, err := l.RunLogs(ctx, c.RunID, page.Next, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"five", "six"}, msgs(page2.Lines))
	require.Equal(t, []ledger.Dropped{{Attempt: 1, Lines: 4}}, page2.Dropped)
	all, err := l.RunLogs(ctx, c.RunID, 0, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"five", "six"}, msgs(all.Lines))
	follow, err := l.RunLogs(ctx, c.RunID, page2.Next, 0)
	require.NoError(t, err)
	require.Empty(t, follow.Lines)
	require.Equal(t, page2.Next, follow.Next)

	// A second attempt: the run's bound (here 3 lines) keeps the newest lines of all attempts.
	_, err = l.SyncRuns(ctx, nil, []ledger.LogBatch{{RunID: c.RunID, Attempt: 2, FirstSeq: 1,
		Lines: []ledger.LogLine{line(1, "again-1"), line(2, "again-2")}}})
	require.NoError(t, err)
	require.NoError(t, l.TrimRunLogs(ctx, c.RunID, 3, 1<<20))
	all, err = l.RunLogs(ctx, c.RunID, 0, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"six", "again-1", "again-2"}, msgs(all.Lines))
	require.Equal(t, []ledger.Dropped{{Attempt: 1, Lines: 5}}, all.Dropped)
	require.NoError(t, l.TrimRunLogs(ctx, c.RunID, 100, 2*(len("again-1")+len("k=v")+32)))
	all, err = l.RunLogs(ctx, c.RunID, 0, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"again-1", "again-2"}, msgs(all.Lines), "the byte bound")
}

func msgs(lines []ledger.LogLine) []string {
	out := []string{}
	for _, l := range lines {
		out = append(out, l.Msg)
	}
	return out
}

// A retry is a new run linked to the failed one, recorded before it is published; the same
// key twice retries once; a run that did not fail cannot be retried.
func TestRetryMakesOneLinkedRunPerKey(t *testing.T) {
	t.Parallel()
	l, _ := newLedger(t)
	ctx := context.Background()
	failed := env("failed")
	failed.Shard = job.Shard{Index: 1, Total: 3}
	c, err := l.ClaimRun(ctx, failed, "a", "m1", time.Minute)
	require.NoError(t, err)
	require.NoError(t, l.Finish(ctx, c, ledger.Outcome{Status: ledger.StatusFailed, Err: errors.New("boom")}))

	var sent []job.Envelope
	publish := func(_ context.Context, e job.Envelope) (string, error) {
		sent = append(sent, e)
		return "msg-retry", nil
	}
	key := ledger.RetryKey(c.RunID, time.Now())
	r, created, err := l.Retry(ctx, c.RunID, "alice", key, publish)
	require.NoError(t, err)
	require.True(t, created)
	require.Len(t, sent, 1)
	require.Equal(t, job.Shard{Index: 1, Total: 3}, sent[0].Shard)
	require.JSONEq(t, `{"n":1}`, string(sent[0].Params))
	require.Equal(t, "alice", sent[0].RequestedBy)
	body, err := job.Encode(sent[0])
	require.NoError(t, err)
	_, err = job.Decode(body, time.Now(), nil)
	require.NoError(t, err, "the retry's message is a valid envelope")
	got, err := l.GetRun(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, ledger.StatusScheduled, got.Status)
	require.Equal(t, "msg-retry", got.MsgID)
	ctl, err := l.Control(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, c.RunID, ctl.RetryOf)
	ctl, err = l.Control(ctx, c.RunID)
	require.NoError(t, err)
	require.Equal(t, []int64{r.ID}, ctl.RetriedAs)

	same, created, err := l.Retry(ctx, c.RunID, "alice", key, publish)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, r.ID, same.ID)
	require.Len(t, sent, 1, "nothing published twice")

	ok, err := l.ClaimRun(ctx, env("ok"), "a", "m2", time.Minute)
	require.NoError(t, err)
	require.NoError(t, l.Finish(ctx, ok, ledger.Outcome{Status: ledger.StatusSucceeded}))
	_, _, err = l.Retry(ctx, ok.RunID, "alice", ledger.RetryKey(ok.RunID, time.Now()), publish)
	require.ErrorIs(t, err, ledger.ErrNotRetryable)
}
