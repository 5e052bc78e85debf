package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
)

// On the real broker: a node consumes the schedule topic in its own group, fires published
// there run (one delivered ahead of its time is held until then), and nothing is lost across
// the lanes: a fire on the job topic (a ticker older than the schedule topic), a forced run on
// the schedule topic, and one fire published on both topics each run, the last exactly once.
func TestScheduleLaneRunsFiresAndBothTopicsStillWork(t *testing.T) {
	c := newCluster(t, `  probe: {max_attempts: 1, overlap: allow}`)
	n := c.start("a", false)
	p := c.producer()
	ctx := context.Background()
	cfg := c.mq.Config
	testenv.Eventually(t, 60*time.Second, func() bool {
		for _, q := range n.ScheduleConsumer.Queues() {
			if strings.Contains(q, "/"+cfg.ScheduleTopic+"/") {
				return true
			}
		}
		return false
	}, "the schedule consumer to hold queues of %s", cfg.ScheduleTopic)

	sfx := testenv.Suffix()
	fire := func(key string, at time.Time) job.Envelope {
		return job.Envelope{Job: "probe", RunKey: key, Trigger: job.TriggerSchedule, ScheduledAt: at.UTC(),
			Shard: job.Shard{Total: 1}, Params: []byte(`{}`), RequestedBy: "test"}
	}
	raw := func(topic string, env job.Envelope) {
		b, err := job.Encode(env)
		require.NoError(t, err)
		_, err = p.PublishRaw(ctx, topic, env.Job, []string{env.RunKey}, b, time.Time{})
		require.NoError(t, err)
	}
	now := time.Now()
	onTime := fire("sched:lane-"+sfx, now)
	require.Equal(t, cfg.ScheduleTopic, p.TopicFor(onTime))
	_, err := p.Send(ctx, onTime, time.Time{})
	require.NoError(t, err)
	// As the ticker sends it: a timer message due deliver_ahead before its time.
	ahead := fire("sched:ahead-"+sfx, now.Add(3*time.Second))
	_, err = p.Send(ctx, ahead, ahead.ScheduledAt.Add(-time.Second))
	require.NoError(t, err)
	oldTicker := fire("sched:old-ticker-"+sfx, now)
	raw(cfg.Topic, oldTicker)
	forced := manual("probe", "manual:on-schedule-topic-"+sfx, 1, `{}`)[0]
	raw(cfg.ScheduleTopic, forced)
	both := fire("sched:both-"+sfx, now)
	raw(cfg.Topic, both)
	raw(cfg.ScheduleTopic, both)

	for _, env := range []job.Envelope{onTime, ahead, oldTicker, forced, both} {
		g := c.waitGroup(n.Ledger, "probe", env.RunKey, 60*time.Second)
		require.True(t, g.Succeeded(), "%s: %v", env.RunKey, g.ByStatus)
		calls := c.rec.forKey(env.RunKey)
		require.Len(t, calls, 1, "%s ran once", env.RunKey)
		// The node holds a run until its time on the database's clock (the node's clock plus the
		// offset it measured); the recorder stamps the handler's start on this process's clock.
		// A resync can move the offset by a few milliseconds between the hold and this check.
		onDBClock := calls[0].start.Add(n.Clock.Offset())
		require.False(t, onDBClock.Before(env.ScheduledAt.Add(-10*time.Millisecond)),
			"%s started before its time (start %s, offset %s, scheduled %s)", env.RunKey,
			calls[0].start.Format(time.RFC3339Nano), n.Clock.Offset(), env.ScheduledAt.Format(time.RFC3339Nano))
	}
}
