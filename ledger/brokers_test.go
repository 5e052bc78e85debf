package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// The ledger keeps which broker holds a scheduled run's message; when that
// broker is gone its unclaimed runs become unpublished (the repair pass publishes them again)
// and claimed ones are left alone.
func TestForgetBrokerMakesItsScheduledRunsUnpublished(t *testing.T) {
	l, s := newLedger(t)
	ctx := context.Background()
	put := func(key, broker string) job.Envelope {
		e := env(key)
		inserted, err := l.RecordScheduled(ctx, e)
		require.NoError(t, err)
		require.True(t, inserted)
		require.NoError(t, l.MarkPublished(ctx, e, job.Receipt{MsgID: "m-" + key, Broker: broker, Queue: 3}))
		return e
	}
	put("sched:a1", "broker-a")
	put("sched:b1", "broker-b")
	put("sched:b2", "broker-b")
	claimed := put("sched:b3", "broker-b")
	_, err := l.ClaimRun(ctx, claimed, "n", "m-sched:b3", time.Minute)
	require.NoError(t, err)
	old := env("sched:old") // published before the broker was recorded
	_, err = l.RecordScheduled(ctx, old)
	require.NoError(t, err)
	require.NoError(t, l.MarkPublished(ctx, old, job.Receipt{MsgID: "m-old"}))

	brokers, err := l.WaitingBrokers(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"broker-a", "broker-b"}, brokers)
	var queue int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT msg_queue FROM job_runs WHERE run_key = 'sched:old'`).Scan(&queue))
	require.Equal(t, -1, queue, "no broker named, no queue")

	n, err := l.ForgetBroker(ctx, "broker-b")
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "the claimed run stays as it is")
	brokers, err = l.WaitingBrokers(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"broker-a"}, brokers)
	unpub, err := l.Unpublished(ctx, -time.Minute, 10)
	require.NoError(t, err)
	var keys []string
	for _, r := range unpub {
		keys = append(keys, r.RunKey)
	}
	require.ElementsMatch(t, []string{"sched:b1", "sched:b2"}, keys)

	// Publishing again records the new broker, so the next pass does not move them again.
	require.NoError(t, l.MarkPublished(ctx, env("sched:b1"), job.Receipt{MsgID: "m2", Broker: "broker-a", Queue: 0}))
	var broker string
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT msg_broker, msg_queue FROM job_runs WHERE run_key = 'sched:b1'`).
		Scan(&broker, &queue))
	require.Equal(t, "broker-a", broker)
	require.Zero(t, queue)
	var c ledger.Run
	c, err = l.GetRun(ctx, mustID(t, l, "sched:b3"))
	require.NoError(t, err)
	require.Equal(t, ledger.StatusRunning, c.Status)
}

func mustID(t *testing.T, l *ledger.Ledger, runKey string) int64 {
	t.Helper()
	rs, err := l.ListRuns(context.Background(), ledger.RunFilter{RunKey: runKey, Limit: 1})
	require.NoError(t, err)
	require.Len(t, rs, 1)
	return rs[0].ID
}
