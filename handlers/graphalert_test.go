package handlers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/alert"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// The design: a deviation above 0.1% sends an alert email, on every daily run that deviates.
// Two days' runs deviating the same way send two emails, though they fall inside one alert
// window; the retry of day one, and day one seen by a second node, send nothing more.
func TestGraphDeviationEmailsEveryDailyRun(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	ctx := context.Background()
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	n := testenv.NewNeo4j(t)
	seedUsers(t, s, idRange(1, 100), nil)
	seedNodes(t, n, idRange(1, 100, 5, 6), "") // 2% missing
	h, err := NewGraphConsistency(s.Pool, n.Driver, GraphConsistencyConfig{Label: n.Label, ChunkSize: 50}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	sink := testenv.NewSMTPSink(t)
	cfg := alert.Config{SMTP: alert.SMTPConfig{Host: sink.Host, Port: sink.Port, From: "jobs@chat.example",
		To: []string{"oncall@chat.example"}}}
	notifier := func(node string) *alert.Notifier {
		a, err := alert.New(cfg, s.Pool, node, testenv.Logger(t), time.Now)
		require.NoError(t, err)
		return a
	}
	nodeA, nodeB := notifier("a"), notifier("b")

	day1 := time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)
	day2 := day1.AddDate(0, 0, 1)
	fail := func(a *alert.Notifier, at time.Time, attempt int) {
		env := job.Envelope{Job: GraphConsistencyKind, RunKey: job.ScheduleRunKey(GraphConsistencyKind, at),
			Trigger: job.TriggerSchedule, ScheduledAt: at, Shard: job.Shard{Total: 1}}
		res, err := h.Run(ctx, &job.Run[GraphConsistencyArgs]{Envelope: env, Attempt: attempt})
		require.True(t, job.IsDiscard(err), "%v", err)
		a.RunFailed(ctx, env, int64(attempt), err, res)
	}
	fail(nodeA, day1, 1)
	fail(nodeA, day1, 2) // a retry of the same occurrence
	fail(nodeB, day1, 1) // the same occurrence on another node
	fail(nodeB, day2, 1) // the next day's run deviates again: a new email
	fail(nodeA, day2, 1)
	require.NoError(t, nodeA.Stop(ctx))
	require.NoError(t, nodeB.Stop(ctx))
	mails := sink.Messages()
	require.Len(t, mails, 2, "one email per deviating daily run")
	var keys []string
	for _, m := range mails {
		for _, at := range []time.Time{day1, day2} {
			if strings.Contains(m.Data, job.ScheduleRunKey(GraphConsistencyKind, at)) {
				keys = append(keys, at.Format(time.DateOnly))
			}
		}
	}
	require.ElementsMatch(t, []string{"2026-11-26", "2026-11-27"}, keys)
	var suppressed int64
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT sum(suppressed) FROM job_alerts WHERE job = $1`,
		GraphConsistencyKind).Scan(&suppressed))
	require.Equal(t, int64(3), suppressed, "the retry and the second node's sightings were recorded, not sent")
}
