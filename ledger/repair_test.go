package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/ledger"
)

// The same message rejected again (redelivered, or the same run published
// again by the repair pass) is one row counting the times, not a row per message.
func TestRejectedRepeatsAreRecordedOnce(t *testing.T) {
	l, s := newLedger(t)
	ctx := context.Background()
	body := []byte(`{"job":"gone_kind","run_key":"sched:gone_kind@2026-01-01T00:00:00Z"}`)
	for i, msg := range []string{"m1", "m2", "m3"} {
		require.NoError(t, l.RecordRejected(ctx, ledger.Rejection{Job: "gone_kind", RunKey: "k", MsgID: msg, Node: "n",
			Reason: "unknown job", Body: body}), i)
	}
	require.NoError(t, l.RecordRejected(ctx, ledger.Rejection{Job: "gone_kind", MsgID: "m4", Node: "n",
		Reason: "unknown job", Body: []byte(`{"other":1}`)}))
	var rows, times int
	var msgID string
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM job_runs WHERE status = 'rejected'`).Scan(&rows))
	require.Equal(t, 2, rows, "one row per distinct body")
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT (result->>'times')::int, msg_id FROM job_runs
		WHERE status = 'rejected' AND result->>'run_key' = 'k'`).Scan(&times, &msgID))
	require.Equal(t, 3, times)
	require.Equal(t, "m3", msgID, "the latest message")
}

// skip_if_running skips a run that never started, never one that already
// had an attempt.
func TestSkipFreshSkipsOnlyRunsThatNeverStarted(t *testing.T) {
	l, _ := newLedger(t)
	ctx := context.Background()
	why := map[string]string{"skipped": "busy"}
	skipped, st, err := l.SkipFresh(ctx, env("manual:new"), "n", why)
	require.NoError(t, err)
	require.True(t, skipped)
	require.Equal(t, ledger.StatusSkipped, st)

	e := env("manual:started")
	c, err := l.ClaimRun(ctx, e, "n", "m", time.Minute)
	require.NoError(t, err)
	require.NoError(t, l.Finish(ctx, c, ledger.Outcome{Status: ledger.StatusInterrupted}))
	skipped, st, err = l.SkipFresh(ctx, e, "n", why)
	require.NoError(t, err)
	require.False(t, skipped)
	require.Equal(t, ledger.StatusInterrupted, st, "left for a later delivery to run")
}
