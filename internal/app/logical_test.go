package app

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/admin"
	"github.com/chatplat/job-service/consumer"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// Through the admin API of a real node: a forced run is answered with its run id and the
// day it stands for, recorded before any node takes it; a backfill runs one report per day;
// a dead letter of day D's failed report, resent, reports day D.
func TestAPIRunsStandForTheirDay(t *testing.T) {
	c := newCluster(t, `  daily_stats: {schedule: "0 0 1 * * *", max_attempts: 1}`)
	c.schema.ApplyChatSchema(t)
	var fail atomic.Bool
	a, srv := c.startWithAdmin("a", &fail)
	ctx := context.Background()
	today := time.Now().UTC().Truncate(24 * time.Hour)

	var forced admin.ForceResponse
	require.Equal(t, http.StatusAccepted, apiCall(t, "POST", srv.URL()+"api/jobs/daily_stats/run", `{"requested_by":"alice"}`, &forced))
	require.Len(t, forced.RunIDs, 1)
	require.True(t, forced.Interval.Start.Equal(today.AddDate(0, 0, -1)), "a forced run reports yesterday: %s", forced.Interval)
	run := c.finishedRun(a.Ledger, "daily_stats", forced.RunKey)
	require.Equal(t, forced.RunIDs[0], run.ID)
	require.Equal(t, ledger.StatusSucceeded, run.Status, run.Error)

	var bf admin.BackfillStatus
	require.Equal(t, http.StatusAccepted, apiCall(t, "POST", srv.URL()+"api/jobs/daily_stats/backfill",
		`{"from":"2026-11-10","to":"2026-11-12"}`, &bf))
	require.Equal(t, 3, bf.Total)
	testenv.Eventually(t, time.Minute, func() bool {
		require.Equal(t, http.StatusOK, apiCall(t, "GET", fmt.Sprintf("%sapi/backfills/%d", srv.URL(), bf.Backfill.ID), "", &bf))
		for _, p := range bf.Periods {
			if p.Status != ledger.StatusSucceeded {
				return false
			}
		}
		return true
	}, "the backfill's three days to succeed")
	var n int
	require.NoError(t, c.schema.Pool.QueryRow(ctx, `SELECT count(*) FROM daily_stats
		WHERE stat_date BETWEEN '2026-11-10' AND '2026-11-12'`).Scan(&n))
	require.Equal(t, 3, n)

	// Day D's nightly report failed; its dead letter is resent days later.
	day := today.AddDate(0, 0, -5)
	fire := day.AddDate(0, 0, 1).Add(time.Hour)
	env := job.Envelope{Job: "daily_stats", RunKey: job.ScheduleRunKey("daily_stats", fire), Trigger: job.TriggerSchedule,
		ScheduledAt: fire, Shard: job.Shard{Total: 1}, Params: []byte(`{}`), RequestedBy: "ticker@gone"}
	var id int64
	require.NoError(t, c.schema.Pool.QueryRow(ctx, `INSERT INTO job_runs (job, run_key, trigger, scheduled_at, status,
		attempt, node, started_at, finished_at, error) VALUES ('daily_stats', $1, 'schedule', $2, 'failed', 1, 'gone', $2,
		$2, 'source down') RETURNING id`, env.RunKey, fire).Scan(&id))
	body, err := job.Encode(env)
	require.NoError(t, err)
	d := consumer.Delivery{Body: body, MsgID: "DLQMSG" + testenv.Suffix(), Tag: "daily_stats", Topic: "%DLQ%" + c.mq.Config.ConsumerGroup}
	require.Contains(t, a.Proc.Process(ctx, d).Reason, "retried as run")
	ctl, err := a.Ledger.Control(ctx, id)
	require.NoError(t, err)
	require.Len(t, ctl.RetriedAs, 1)
	retry, err := a.Ledger.GetRun(ctx, ctl.RetriedAs[0])
	require.NoError(t, err)
	retry = c.finishedRun(a.Ledger, "daily_stats", retry.RunKey)
	require.Equal(t, ledger.StatusSucceeded, retry.Status, retry.Error)
	require.JSONEq(t, fmt.Sprintf(`{"date":%q}`, day.Format(time.DateOnly)), string(retry.Params))
	require.NoError(t, c.schema.Pool.QueryRow(ctx, `SELECT count(*) FROM daily_stats WHERE stat_date = $1`, day).Scan(&n))
	require.Equal(t, 1, n, "the resent report wrote day %s", day.Format(time.DateOnly))
}
