package ticker

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/mq"
)

// A run whose messages never reached a claim (each dead-lettered while the consumers could
// not reach Postgres, say) is not left scheduled forever nor lost: its row, recorded before
// its message, is republished up to max_republish, then ends failed saying it was never claimed.
func TestRunNeverClaimedEndsFailedSayingSo(t *testing.T) {
	s := testenv.NewSchema(t)
	m := testenv.NewMQ(t, 2)
	ctx := context.Background()
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	l := ledger.New(s.Pool)
	prod, err := mq.NewProducer(m.Config, "never-"+testenv.Suffix())
	require.NoError(t, err)
	t.Cleanup(func() { _ = prod.Close() })

	mr, err := job.NewManualRun("probe", nil, 1, "alice", time.Now(), nil)
	require.NoError(t, err)
	runs, err := l.Submit(ctx, mr.Envelopes, func(context.Context, job.Envelope) (string, error) { return "dead-lettered", nil })
	require.NoError(t, err)
	id := runs[0].ID
	// Its message was republished max_republish times already, and still nobody claimed it.
	_, err = s.Pool.Exec(ctx, `UPDATE job_runs SET scheduled_at = now() - interval '2 hours',
		updated_at = now() - interval '1 hour', republished = 3 WHERE id = $1`, id)
	require.NoError(t, err)

	alerts := &recAlerts{}
	tk, _ := repairTicker(t, s, l, prod, stuckRepair)
	tk.SetKnown(func(kind string) bool { return kind == "probe" })
	tk.SetAlerter(alerts)
	require.NoError(t, tk.Tick(ctx))

	r, err := l.GetRun(ctx, id)
	require.NoError(t, err)
	require.Equal(t, ledger.StatusFailed, r.Status)
	require.Contains(t, r.Error, "never claimed: republished 3 times without finishing")
	require.Equal(t, []int64{id}, alerts.ids())
}
