package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/ledger"
)

// A run whose handlers logged nothing has no stored lines: once it is finished, its log still
// reads as every attempt's first and last line, built from the run and its past attempts; not
// while it runs (its lines may still come), and never over lines that were stored.
func TestRunLogsOfARunThatLoggedNothingAreBuiltFromItsRecord(t *testing.T) {
	t.Parallel()
	l, _ := newLedger(t)
	ctx := context.Background()
	e := env("quiet")
	e.Params = []byte(`{"day":"2026-12-07"}`)
	c1, err := l.ClaimRun(ctx, e, "node-a", "m1", time.Minute)
	require.NoError(t, err)
	page, err := l.RunLogs(ctx, c1.RunID, 0, 0)
	require.NoError(t, err)
	require.Empty(t, page.Lines, "running: no lines yet")
	require.Equal(t, ledger.StatusRunning, page.RunStatus, "the status read with the lines")

	require.NoError(t, l.Finish(ctx, c1, ledger.Outcome{Status: ledger.StatusRetrying, Err: errors.New("s3 down")}))
	c2, err := l.ClaimRun(ctx, e, "node-b", "m2", time.Minute)
	require.NoError(t, err)
	require.Equal(t, 2, c2.Attempt)
	require.NoError(t, l.Finish(ctx, c2, ledger.Outcome{Status: ledger.StatusSucceeded, Result: map[string]int{"deleted": 3}}))

	page, err = l.RunLogs(ctx, c1.RunID, 0, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"run started", "run finished", "run started", "run finished"}, msgs(page.Lines))
	require.Equal(t, int64(0), page.Next, "built lines move no cursor")
	require.Equal(t, ledger.StatusSucceeded, page.RunStatus, "a follower stops by it")
	first, end1, end2 := page.Lines[0], page.Lines[1], page.Lines[3]
	require.Equal(t, 1, first.Attempt)
	require.Contains(t, first.Attrs, "node=node-a attempt=1 shard=0/1 trigger=manual")
	require.Contains(t, first.Attrs, `params="{\"day\": \"2026-12-07\"}"`) // as jsonb prints it
	require.Equal(t, "WARN", end1.Level)
	require.Contains(t, end1.Attrs, `status=retrying`)
	require.Contains(t, end1.Attrs, `err="s3 down"`)
	require.Equal(t, 2, end2.Attempt)
	require.Equal(t, "INFO", end2.Level)
	require.Contains(t, end2.Attrs, `status=succeeded`)
	require.Contains(t, end2.Attrs, `result="{\"deleted\": 3}"`)
	require.False(t, end2.At.Before(page.Lines[2].At))

	// A run whose handler logged keeps exactly what was stored.
	c3, err := l.ClaimRun(ctx, env("loud"), "node-a", "m3", time.Minute)
	require.NoError(t, err)
	require.NoError(t, l.Finish(ctx, c3, ledger.Outcome{Status: ledger.StatusSucceeded, Log: &ledger.LogBatch{
		RunID: c3.RunID, Attempt: 1, FirstSeq: 1,
		Lines: []ledger.LogLine{{Seq: 1, At: time.Now(), Level: "INFO", Msg: "hello"}}}}))
	page, err = l.RunLogs(ctx, c3.RunID, 0, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"hello"}, msgs(page.Lines))
}

// logged is an attempt's stored log as a node writes it when its handler logged: its own first
// line, what the handler said, its last line.
func logged(c ledger.Claim, said string) *ledger.LogBatch {
	now := time.Now()
	return &ledger.LogBatch{RunID: c.RunID, Attempt: c.Attempt, FirstSeq: 1, Lines: []ledger.LogLine{
		{Seq: 1, At: now, Level: "INFO", Msg: "run started"},
		{Seq: 2, At: now, Level: "INFO", Msg: said},
		{Seq: 3, At: now, Level: "INFO", Msg: "run finished"}}}
}

// readAll follows the cursor as jobctl logs does, limit lines a page, until a page with fewer
// stored lines (built ones have id 0 and do not count).
func readAll(t *testing.T, l *ledger.Ledger, id int64, limit int) []ledger.LogLine {
	t.Helper()
	var all []ledger.LogLine
	var after int64
	for range 100 {
		page, err := l.RunLogs(context.Background(), id, after, limit)
		require.NoError(t, err)
		all, after = append(all, page.Lines...), page.Next
		stored := 0
		for _, ln := range page.Lines {
			if ln.ID != 0 {
				stored++
			}
		}
		if stored < limit {
			return all
		}
	}
	t.Fatal("the cursor never reached the end")
	return nil
}

// A retried run whose attempts differ, one logging and one not, reads as every attempt in
// order: the one that logged nothing gets its first and last lines built beside the stored
// lines of the other, once each however the log is paged.
func TestRunLogsOfARetriedRunBuildTheAttemptsThatLoggedNothing(t *testing.T) {
	t.Parallel()
	l, _ := newLedger(t)
	ctx := context.Background()

	// Attempt 1 logged and failed; attempt 2 logged nothing and succeeded.
	c1, err := l.ClaimRun(ctx, env("loud-then-quiet"), "node-a", "m1", time.Minute)
	require.NoError(t, err)
	require.NoError(t, l.Finish(ctx, c1, ledger.Outcome{Status: ledger.StatusRetrying, Err: errors.New("s3 down"), Log: logged(c1, "fetching")}))
	c2, err := l.ClaimRun(ctx, env("loud-then-quiet"), "node-b", "m2", time.Minute)
	require.NoError(t, err)
	require.NoError(t, l.Finish(ctx, c2, ledger.Outcome{Status: ledger.StatusSucceeded}))

	// Attempt 1 logged nothing and failed; attempt 2 logged and succeeded.
	c3, err := l.ClaimRun(ctx, env("quiet-then-loud"), "node-a", "m3", time.Minute)
	require.NoError(t, err)
	require.NoError(t, l.Finish(ctx, c3, ledger.Outcome{Status: ledger.StatusRetrying, Err: errors.New("s3 down")}))
	c4, err := l.ClaimRun(ctx, env("quiet-then-loud"), "node-b", "m4", time.Minute)
	require.NoError(t, err)
	require.NoError(t, l.Finish(ctx, c4, ledger.Outcome{Status: ledger.StatusSucceeded, Log: logged(c4, "fetching")}))

	want := []string{"1 run started", "1 fetching", "1 run finished", "2 run started", "2 run finished"}
	wantQuietFirst := []string{"1 run started", "1 run finished", "2 run started", "2 fetching", "2 run finished"}
	for _, limit := range []int{5000, 1, 2, 3} {
		require.Equal(t, want, attemptMsgs(readAll(t, l, c1.RunID, limit)), "limit %d", limit)
		require.Equal(t, wantQuietFirst, attemptMsgs(readAll(t, l, c3.RunID, limit)), "limit %d", limit)
	}
	all := readAll(t, l, c1.RunID, 5000)
	require.Contains(t, all[len(all)-1].Attrs, "status=succeeded", "the run's outcome is its log's last line")
}

func attemptMsgs(lines []ledger.LogLine) []string {
	out := []string{}
	for _, ln := range lines {
		out = append(out, fmt.Sprintf("%d %s", ln.Attempt, ln.Msg))
	}
	return out
}

// A reader following a running run's log sees an earlier attempt that logged nothing once,
// when the current attempt's first stored line comes, and the current attempt when it ends.
func TestFollowingARunningRunShowsItsQuietAttemptsOnce(t *testing.T) {
	t.Parallel()
	l, _ := newLedger(t)
	ctx := context.Background()
	c1, err := l.ClaimRun(ctx, env("follow"), "node-a", "m1", time.Minute)
	require.NoError(t, err)
	require.NoError(t, l.Finish(ctx, c1, ledger.Outcome{Status: ledger.StatusRetrying, Err: errors.New("s3 down")}))
	c2, err := l.ClaimRun(ctx, env("follow"), "node-b", "m2", time.Minute)
	require.NoError(t, err)

	var seen []ledger.LogLine
	var after int64
	poll := func() {
		page, err := l.RunLogs(ctx, c1.RunID, after, 0)
		require.NoError(t, err)
		seen, after = append(seen, page.Lines...), page.Next
	}
	poll()
	poll()
	require.Empty(t, seen, "nothing stored yet: the quiet attempt's place is not known")
	b := logged(c2, "fetching")
	_, err = l.SyncRuns(ctx, []int64{c2.RunID}, []ledger.LogBatch{{RunID: b.RunID, Attempt: 2, FirstSeq: 1, Lines: b.Lines[:2]}})
	require.NoError(t, err)
	poll()
	poll()
	require.Equal(t, []string{"1 run started", "1 run finished", "2 run started", "2 fetching"}, attemptMsgs(seen))
	require.NoError(t, l.Finish(ctx, c2, ledger.Outcome{Status: ledger.StatusSucceeded,
		Log: &ledger.LogBatch{RunID: b.RunID, Attempt: 2, FirstSeq: 1, Lines: b.Lines[2:]}}))
	poll()
	require.Equal(t, []string{"1 run started", "1 run finished", "2 run started", "2 fetching", "2 run finished"}, attemptMsgs(seen))
}

// A run that ends while its log is being read, its last lines written with its outcome, is
// read either before its end (no built lines: its place is unknown) or after it (its stored
// lines): never its built lines and then its stored ones as well. The reader is held between
// its read of the lines and its read of the run by a lock on job_runs, which the outcome's
// transaction takes before it commits.
func TestRunLogsOfARunEndingWhileReadGetsNoBuiltLinesBesideStoredOnes(t *testing.T) {
	t.Parallel()
	l, s := newLedger(t)
	ctx := context.Background()
	c, err := l.ClaimRun(ctx, env("ending"), "node-a", "m1", time.Minute)
	require.NoError(t, err)

	tx, err := s.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	_, err = tx.Exec(ctx, `LOCK TABLE job_runs IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE job_runs SET status = 'succeeded', finished_at = now(), updated_at = now() WHERE id = $1`, c.RunID)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO job_run_logs (run_id, attempt, seq, at, level, msg) VALUES
		($1, 1, 1, now(), 'INFO', 'run started'), ($1, 1, 2, now(), 'INFO', 'hello'), ($1, 1, 3, now(), 'INFO', 'run finished')`, c.RunID)
	require.NoError(t, err)

	type result struct {
		page ledger.RunLogPage
		err  error
	}
	read := make(chan result, 1)
	go func() {
		page, err := l.RunLogs(ctx, c.RunID, 0, 0)
		read <- result{page, err}
	}()
	require.Eventually(t, func() bool {
		var waiting int
		require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks
			WHERE NOT granted AND relation = 'job_runs'::regclass`).Scan(&waiting))
		return waiting > 0
	}, 10*time.Second, 5*time.Millisecond, "the reader waits for the run")
	require.NoError(t, tx.Commit(ctx))
	first := <-read
	require.NoError(t, first.err)
	rest, err := l.RunLogs(ctx, c.RunID, first.page.Next, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"run started", "hello", "run finished"}, msgs(append(first.page.Lines, rest.Lines...)))
}
