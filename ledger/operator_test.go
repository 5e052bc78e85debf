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

// A cancel asked while an attempt runs ends the run cancelled however the attempt ended: with
// an error (retrying, or failed once attempts are exhausted) or interrupted by a drain, before
// its heartbeat brought the request. Recorded retrying or interrupted, takeover would refuse it,
// redeliveries would be acknowledged as done and the repair pass would give it up as failed.
func TestCancelEndsCancelledHoweverTheAttemptEnded(t *testing.T) {
	t.Parallel()
	l, s := newLedger(t)
	ctx := context.Background()
	for _, st := range []ledger.Status{ledger.StatusRetrying, ledger.StatusInterrupted, ledger.StatusFailed} {
		e := env("cancel-" + string(st))
		c, err := l.ClaimRun(ctx, e, "a", "m-"+string(st), time.Minute)
		require.NoError(t, err)
		asked, err := l.RequestCancel(ctx, c.RunID, "alice")
		require.NoError(t, err)
		require.Equal(t, ledger.StatusRunning, asked)
		// The attempt ends before the node's heartbeat saw the request.
		_ = l.Finish(ctx, c, ledger.Outcome{Status: st, Err: errors.New("boom")})
		r, err := l.GetRun(ctx, c.RunID)
		require.NoError(t, err)
		require.Equal(t, ledger.StatusCancelled, r.Status, "attempt ended %s after the cancel request", st)
		require.Equal(t, "cancelled by alice", r.Error)
		require.NotNil(t, r.FinishedAt)
		again, err := l.ClaimRun(ctx, e, "b", "m-"+string(st), time.Minute)
		require.NoError(t, err)
		require.Equal(t, ledger.AlreadyDone, again.Outcome)
		require.Equal(t, ledger.StatusCancelled, again.Status)
	}

	// A run left retrying with a cancel request (written by a node of an earlier release) ends
	// cancelled when its message comes back, and the repair pass never republishes it nor gives
	// it up as failed.
	for i, how := range []string{"redelivered", "stuck"} {
		e := env("left-" + how)
		c, err := l.ClaimRun(ctx, e, "a", "m-left", time.Minute)
		require.NoError(t, err)
		_, err = s.Pool.Exec(ctx, `UPDATE job_runs SET status = 'retrying', cancel_requested_by = 'bob',
			cancel_requested_at = now(), updated_at = now() - interval '2 hours' WHERE id = $1`, c.RunID)
		require.NoError(t, err)
		if i == 0 {
			again, err := l.ClaimRun(ctx, e, "b", "m-left", time.Minute)
			require.NoError(t, err)
			require.Equal(t, ledger.AlreadyDone, again.Outcome)
			require.Equal(t, ledger.StatusCancelled, again.Status)
		} else {
			stuck, err := l.StuckRuns(ctx, time.Hour, 100)
			require.NoError(t, err)
			for _, r := range stuck {
				require.NotEqual(t, c.RunID, r.ID, "a cancelled run is not republished")
			}
		}
		r, err := l.GetRun(ctx, c.RunID)
		require.NoError(t, err)
		require.Equal(t, ledger.StatusCancelled, r.Status, how)
		require.Equal(t, "cancelled by bob", r.Error)
	}
}

// finishedAt claims a run of key scheduled at at (message msgID, node "a") and records out;
// it returns the run's envelope, for a late copy of its message.
func finishedAt(t *testing.T, l *ledger.Ledger, key, msgID string, at time.Time, out ledger.Outcome) job.Envelope {
	t.Helper()
	e := env(key)
	e.ScheduledAt = at
	c, err := l.ClaimRun(context.Background(), e, "a", msgID, time.Minute)
	require.NoError(t, err)
	require.NoError(t, l.Finish(context.Background(), c, out))
	return e
}

// The dedup horizon: once retention pruned a run, a late copy of its message is not run again
// (no row is made for it, by claim or takeover); cancelled runs are pruned like the others.
func TestPrunedRunsMessageIsNotRunAgain(t *testing.T) {
	t.Parallel()
	l, s := newLedger(t)
	ctx := context.Background()
	old := time.Now().AddDate(0, 0, -40)
	e := finishedAt(t, l, "pruned", "m1", old, ledger.Outcome{Status: ledger.StatusSucceeded})
	finishedAt(t, l, "pruned-cancelled", "m2", old, ledger.Outcome{Status: ledger.StatusCancelled, Err: &ledger.CancelledError{By: "x"}})
	_, err := s.Pool.Exec(ctx, `UPDATE job_runs SET created_at = $1`, old)
	require.NoError(t, err)

	n, err := l.PruneBatch(ctx, ledger.PruneRuns, time.Now().AddDate(0, 0, -30), 100)
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "the succeeded and the cancelled run are pruned")

	late, err := l.ClaimRun(ctx, e, "b", "m1", time.Minute)
	require.NoError(t, err, "a late copy of a pruned run's message is answered, not failed")
	require.Equal(t, ledger.TooOld, late.Outcome, "a late copy of a pruned run's message must not run again")
	var rows int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM job_runs WHERE run_key = $1`, e.RunKey).Scan(&rows))
	require.Zero(t, rows)

	// A message scheduled after the horizon claims as usual.
	fresh, err := l.ClaimRun(ctx, env("fresh"), "b", "m3", time.Minute)
	require.NoError(t, err)
	require.Equal(t, ledger.Claimed, fresh.Outcome)
}

// A late copy of a run's message whose claim meets retention pruning that run (deleted and
// the horizon raised, not committed yet) waits for retention and is refused as too old: read
// in the claim's own snapshot, the old horizon let it through, and once the pruned row's
// unique-index entry was gone it inserted the run again.
func TestLateCopyWaitingOnRetentionIsRefused(t *testing.T) {
	t.Parallel()
	l, s := newLedger(t)
	ctx := context.Background()
	old := time.Now().AddDate(0, 0, -40)
	e := finishedAt(t, l, "pruned-while-claimed", "m1", old, ledger.Outcome{Status: ledger.StatusSucceeded})
	_, err := s.Pool.Exec(ctx, `UPDATE job_runs SET created_at = $1`, old)
	require.NoError(t, err)

	tx, err := s.Pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	var retention int
	require.NoError(t, tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&retention))
	n, err := ledger.PruneRunsIn(ctx, l, tx, time.Now().AddDate(0, 0, -30), 100)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	type answer struct {
		c   ledger.Claim
		err error
	}
	late := make(chan answer, 1)
	go func() {
		c, err := l.ClaimRun(ctx, e, "b", "m1", time.Minute)
		late <- answer{c, err}
	}()
	require.Eventually(t, func() bool {
		var waiting bool
		err := s.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE $1::int = ANY (pg_blocking_pids(pid)))`, retention).Scan(&waiting)
		return err == nil && waiting
	}, 10*time.Second, 10*time.Millisecond, "the late claim waits for retention's transaction")
	require.NoError(t, tx.Commit(ctx))

	got := <-late
	require.NoError(t, got.err)
	require.Equal(t, ledger.TooOld, got.c.Outcome, "a late copy of a run pruned meanwhile must not run again")
	var rows int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM job_runs WHERE run_key = $1`, e.RunKey).Scan(&rows))
	require.Zero(t, rows)
}

// The ticker's cursor survives retention: pruning the rows of a job's occurrences keeps its
// newest occurrence, so a new leader neither starts the job from now (dropping what it missed
// meanwhile without a word) nor fires the pruned occurrence again.
func TestLastScheduledSurvivesRetention(t *testing.T) {
	t.Parallel()
	l, s := newLedger(t)
	ctx := context.Background()
	last := time.Now().AddDate(0, 0, -40).Truncate(time.Second)
	for _, at := range []time.Time{last.Add(-24 * time.Hour), last} {
		e := job.Envelope{Job: "weekly", RunKey: job.ScheduleRunKey("weekly", at), Trigger: job.TriggerSchedule,
			ScheduledAt: at, Shard: job.Shard{Total: 1}}
		c, err := l.ClaimRun(ctx, e, "a", "m", time.Minute)
		require.NoError(t, err)
		require.NoError(t, l.Finish(ctx, c, ledger.Outcome{Status: ledger.StatusSucceeded}))
	}
	_, err := s.Pool.Exec(ctx, `UPDATE job_runs SET created_at = scheduled_at`)
	require.NoError(t, err)
	n, err := l.PruneBatch(ctx, ledger.PruneRuns, time.Now().AddDate(0, 0, -30), 1)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	n, err = l.PruneBatch(ctx, ledger.PruneRuns, time.Now().AddDate(0, 0, -30), 100)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	got, err := l.LastScheduled(ctx, "weekly")
	require.NoError(t, err)
	require.True(t, last.Equal(got), "last occurrence %s, read %s", last, got)
}

// An occurrence the ticker published ahead of its time (within its lookahead) before the job
// was paused passes while the job is paused: it is skipped, and its message finds it so.
func TestPauseSkipsOccurrencesPublishedAhead(t *testing.T) {
	t.Parallel()
	l, _ := newLedger(t)
	ctx := context.Background()
	at := time.Now().Add(20 * time.Second).Truncate(time.Second)
	ahead := job.Envelope{Job: "minutely", RunKey: job.ScheduleRunKey("minutely", at), Trigger: job.TriggerSchedule,
		ScheduledAt: at, Shard: job.Shard{Total: 1}}
	inserted, err := l.RecordScheduled(ctx, ahead)
	require.NoError(t, err)
	require.True(t, inserted)
	require.NoError(t, l.Pause(ctx, "minutely", "alice"))
	c, err := l.ClaimRun(ctx, ahead, "a", "m", time.Minute)
	require.NoError(t, err)
	require.Equal(t, ledger.AlreadyDone, c.Outcome, "the occurrence published before the pause does not run")
	require.Equal(t, ledger.StatusSkipped, c.Status)
	r, err := l.GetRun(ctx, c.RunID)
	require.NoError(t, err)
	require.JSONEq(t, `{"skipped":"paused","paused_by":"alice"}`, string(r.Result))
}

// A pause that lands between the ticker's read of the paused jobs and its record of the next
// occurrence finds no row to skip; the occurrence is recorded and published after the pause.
// Its claim skips it: a scheduled occurrence of a job paused at or before its time never runs.
func TestPauseSkipsOccurrenceRecordedAfterThePause(t *testing.T) {
	t.Parallel()
	l, s := newLedger(t)
	ctx := context.Background()
	paused, err := l.Paused(ctx) // the ticker's read at the start of its tick
	require.NoError(t, err)
	require.False(t, paused["minutely"])
	require.NoError(t, l.Pause(ctx, "minutely", "alice"))
	at := time.Now().Add(time.Second).Truncate(time.Second)
	next := job.Envelope{Job: "minutely", RunKey: job.ScheduleRunKey("minutely", at), Trigger: job.TriggerSchedule,
		ScheduledAt: at, Shard: job.Shard{Total: 1}}
	inserted, err := l.RecordScheduled(ctx, next)
	require.NoError(t, err)
	require.True(t, inserted)
	c, err := l.ClaimRun(ctx, next, "a", "m", time.Minute)
	require.NoError(t, err)
	require.Equal(t, ledger.AlreadyDone, c.Outcome, "an occurrence recorded after the pause does not run")
	require.Equal(t, ledger.StatusSkipped, c.Status)
	r, err := l.GetRun(ctx, c.RunID)
	require.NoError(t, err)
	require.Equal(t, ledger.StatusSkipped, r.Status)
	require.JSONEq(t, `{"skipped":"paused","paused_by":"alice"}`, string(r.Result))

	// A forced run of the paused job is the operator's own and runs.
	forced := job.Envelope{Job: "minutely", RunKey: "manual:1", Trigger: job.TriggerManual, ScheduledAt: at, Shard: job.Shard{Total: 1}}
	fc, err := l.ClaimRun(ctx, forced, "a", "m2", time.Minute)
	require.NoError(t, err)
	require.Equal(t, ledger.Claimed, fc.Outcome)

	// Resumed, the next occurrence runs.
	require.NoError(t, l.Resume(ctx, "minutely"))
	after := at.Add(time.Minute)
	resumed := job.Envelope{Job: "minutely", RunKey: job.ScheduleRunKey("minutely", after), Trigger: job.TriggerSchedule,
		ScheduledAt: after, Shard: job.Shard{Total: 1}}
	_, err = l.RecordScheduled(ctx, resumed)
	require.NoError(t, err)
	rc, err := l.ClaimRun(ctx, resumed, "a", "m3", time.Minute)
	require.NoError(t, err)
	require.Equal(t, ledger.Claimed, rc.Outcome)
	// The skip in the claim's own statement took the first occurrence out of the runs in flight.
	require.Len(t, requireInflightExact(t, s), 2)
}
