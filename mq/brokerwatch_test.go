package mq_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/mq"
)

// On the local stack's name server and broker: a send says which broker took the message, and
// the watch reads the real route, finds that broker live and a broker the route lacks gone.
func TestBrokerWatchReadsTheNameServersRoute(t *testing.T) {
	t.Parallel()
	m := testenv.NewMQ(t, 4)
	p, err := mq.NewProducer(m.Config, "watch-"+testenv.Suffix())
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	env := job.Envelope{Job: "watch_test", RunKey: "manual:watch-" + testenv.Suffix(), Trigger: job.TriggerManual,
		ScheduledAt: time.Now(), Shard: job.Shard{Index: 0, Total: 1}}
	ctx := context.Background()
	var rc job.Receipt
	testenv.Eventually(t, 30*time.Second, func() bool {
		rc, err = p.Send(ctx, env, time.Now().Add(time.Hour))
		return err == nil
	}, "a send to the new topic: %v", &err)
	require.NotEmpty(t, rc.MsgID)
	require.NotEmpty(t, rc.Broker)
	require.GreaterOrEqual(t, rc.Queue, 0)
	require.Less(t, rc.Queue, 4)

	w := mq.NewBrokerWatch(m.Config, 30*time.Second, time.Now)
	gone, err := w.Gone(ctx, []string{rc.Broker, "no-such-broker"})
	require.NoError(t, err)
	require.Equal(t, []string{"no-such-broker"}, gone)

	// A topic the name server does not route: an error, never "every broker is gone".
	cfg := m.Config
	cfg.Topic = "NOT_ROUTED_" + testenv.Suffix()
	gone, err = mq.NewBrokerWatch(cfg, 30*time.Second, time.Now).Gone(ctx, []string{rc.Broker})
	require.Error(t, err)
	require.Empty(t, gone)
}
