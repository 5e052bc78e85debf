package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
)

// A fire claimed while the consumer holds its early message records its start at
// scheduled_at, not at the claim: whether its row was scheduled by the ticker (taken over) or
// is new (inserted). A run claimed after its time records the claim's time.
func TestClaimAheadRecordsTheStartAtScheduledAt(t *testing.T) {
	t.Parallel()
	l, s := newLedger(t)
	ctx := context.Background()
	at := time.Now().Add(time.Minute).Truncate(time.Microsecond)
	fire := func(key string) job.Envelope {
		e := env(key)
		e.Trigger, e.ScheduledAt = job.TriggerSchedule, at
		return e
	}
	recorded := fire("sched:recorded")
	inserted, err := l.RecordScheduled(ctx, recorded)
	require.NoError(t, err)
	require.True(t, inserted)
	past := env("manual:past")
	for _, e := range []job.Envelope{recorded, fire("sched:new"), past} {
		c, err := l.ClaimRun(ctx, e, "a", "m", time.Minute)
		require.NoError(t, err)
		var started, now time.Time
		require.NoError(t, s.Pool.QueryRow(ctx, `SELECT started_at, now() FROM job_runs WHERE id = $1`, c.RunID).Scan(&started, &now))
		if e.RunKey == past.RunKey {
			require.WithinDuration(t, now, started, 5*time.Second, "a run claimed after its time starts at the claim")
			continue
		}
		require.True(t, started.Equal(at), "%s: started_at %s, scheduled_at %s", e.RunKey, started, at)
	}
}
