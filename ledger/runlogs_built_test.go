package ledger_test

import (
	"context"
	"errors"
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

	require.NoError(t, l.Finish(ctx, c1, ledger.Outcome{Status: ledger.StatusRetrying, Err: errors.New("s3 down")}))
	c2, err := l.ClaimRun(ctx, e, "node-b", "m2", time.Minute)
	require.NoError(t, err)
	require.Equal(t, 2, c2.Attempt)
	require.NoError(t, l.Finish(ctx, c2, ledger.Outcome{Status: ledger.StatusSucceeded, Result: map[string]int{"deleted": 3}}))

	page, err = l.RunLogs(ctx, c1.RunID, 0, 0)
	require.NoError(t, err)
	require.Equal(t, []string{"run started", "run finished", "run started", "run finished"}, msgs(page.Lines))
	require.Equal(t, int64(0), page.Next, "built lines move no cursor")
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
