package ledger_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// A forced run whose publish fails is recorded all the same, unpublished, and the ticker's
// repair pass finds it (Unpublished): the API's answer names a run that exists.
func TestSubmitRecordsTheRunBeforeItsMessage(t *testing.T) {
	t.Parallel()
	l, _ := newLedger(t)
	ctx := context.Background()
	now := time.Now().UTC()
	mr, err := job.NewManualRun("probe", nil, 2, "alice", now, nil)
	require.NoError(t, err)
	brokerDown := errors.New("broker down")
	sent := 0
	runs, err := l.Submit(ctx, mr.Envelopes, func(context.Context, job.Envelope) (string, error) {
		if sent == 1 {
			return "", brokerDown
		}
		sent++
		return "msg-1", nil
	})
	require.ErrorIs(t, err, ledger.ErrRecordedNotPublished)
	require.ErrorIs(t, err, brokerDown)
	require.Len(t, runs, 2)
	require.Equal(t, "msg-1", runs[0].MsgID)
	for _, r := range runs {
		require.Equal(t, ledger.StatusScheduled, r.Status)
		require.True(t, r.Interval().Start.Equal(now.Truncate(time.Microsecond)), "a job without a period stands for the instant it was asked for")
	}
	waiting, err := l.Unpublished(ctx, 0, 10)
	require.NoError(t, err)
	require.Len(t, waiting, 1)
	require.Equal(t, runs[1].ID, waiting[0].ID)
}

// A retry of a run of a date-relative job keeps its period whenever it is asked for: the
// retry's params name it, and the row records it.
func TestRetryKeepsThePeriod(t *testing.T) {
	t.Parallel()
	base, s := newLedger(t)
	l := base.WithSections(map[string]any{handlers.GroupActivityKind: &handlers.GroupActivityConfig{TimeZone: "UTC"}})
	ctx := context.Background()
	// The Monday 02:00 fire of 2026-11-30 ranks week 48 (Nov 23-29).
	fire := time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)
	env := job.Envelope{Job: handlers.GroupActivityKind, RunKey: job.ScheduleRunKey(handlers.GroupActivityKind, fire),
		Trigger: job.TriggerSchedule, ScheduledAt: fire, Shard: job.Shard{Total: 1}}
	inserted, err := l.RecordScheduled(ctx, env)
	require.NoError(t, err)
	require.True(t, inserted)
	var id int64
	require.NoError(t, s.Pool.QueryRow(ctx, `UPDATE job_runs SET status = 'failed', finished_at = now()
		WHERE run_key = $1 RETURNING id`, env.RunKey).Scan(&id))
	orig, err := l.GetRun(ctx, id)
	require.NoError(t, err)
	week48 := job.Interval{Start: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)}
	require.Equal(t, week48.String(), orig.Interval().String(), "the fire records the week it ranks")

	r, created, err := l.Retry(ctx, id, "bob", ledger.RetryKey(id, time.Now()), func(context.Context, job.Envelope) (string, error) {
		return "m", nil
	})
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, week48.String(), r.Interval().String())
	require.JSONEq(t, `{"week":"2026-48"}`, string(r.Params))
	require.Equal(t, "m", r.MsgID)
}

// A backfill cancelled as a whole publishes nothing more and its unfinished runs end
// cancelled; asked for again, it publishes the periods left and the cancelled one.
func TestBackfillCancelAndResume(t *testing.T) {
	t.Parallel()
	base, _ := newLedger(t)
	l := base.WithSections(map[string]any{handlers.DailyStatsKind: &handlers.DailyStatsConfig{TimeZone: "UTC"}})
	ctx := context.Background()
	req := ledger.BackfillRequest{Job: handlers.DailyStatsKind, From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		To: time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC), MaxActive: 1, By: "alice"}
	b, err := l.OpenBackfill(ctx, req)
	require.NoError(t, err)
	published := make(chan job.Envelope, 10)
	publish := func(_ context.Context, env job.Envelope) (string, error) {
		published <- env
		return "m-" + env.RunKey, nil
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.DriveBackfill(ctx, b, false, time.Now, publish, nil)
		done <- err
	}()
	first := <-published // nobody runs it: it stays queued, so the driver waits for a slot
	require.JSONEq(t, `{"date":"2026-11-01"}`, string(first.Params))
	n, err := l.CancelBackfill(ctx, b.ID, "bob")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.ErrorIs(t, <-done, ledger.ErrBackfillCancelled)
	require.Empty(t, published, "nothing published after the cancel")
	runs, err := l.ListRuns(ctx, ledger.RunFilter{Backfill: b.ID})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	require.Equal(t, ledger.StatusCancelled, runs[0].Status)

	again, err := l.OpenBackfill(ctx, req)
	require.NoError(t, err)
	require.Equal(t, b.ID, again.ID, "the same job, dates and params are the same backfill")
	again.MaxActive = 3
	prog, err := l.DriveBackfill(ctx, again, false, time.Now, publish, nil)
	require.NoError(t, err)
	require.Equal(t, 3, prog.Published, "the cancelled period and the two never published")
	periods, err := l.Periods(ctx, again)
	require.NoError(t, err)
	require.Len(t, periods, 3)
	require.Equal(t, 2, periods[0].Runs, "the first period's second run")
}
