package mq

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
)

// Fires (the ticker's occurrences, and the runs its repair pass republishes as schedule or
// recovery) go to the schedule topic; forced runs, events and retries to the job topic.
func TestTopicForSendsFiresToTheScheduleTopic(t *testing.T) {
	t.Parallel()
	for trigger, want := range map[job.Trigger]string{
		job.TriggerSchedule: "JOBS_SCHEDULE",
		job.TriggerRecovery: "JOBS_SCHEDULE",
		job.TriggerManual:   "JOBS",
		job.TriggerEvent:    "JOBS",
	} {
		require.Equal(t, want, topicFor(job.Envelope{Trigger: trigger}, "JOBS", "JOBS_SCHEDULE"), trigger)
	}
	require.Equal(t, "JOBS", topicFor(job.Envelope{Trigger: job.TriggerSchedule}, "JOBS", ""),
		"without a schedule topic fires stay on the job topic")
}

func TestScheduleTopicConfig(t *testing.T) {
	t.Parallel()
	c := Config{Topic: "T1", ConsumerGroup: "g1"}.WithDefaults()
	require.Equal(t, "T1_SCHEDULE", c.ScheduleTopic)
	require.Equal(t, "g1-schedule", c.ScheduleGroup())
	require.NoError(t, c.Validate())
	c.ScheduleTopic = "T1"
	require.ErrorContains(t, c.Validate(), "schedule_topic")
	c.ScheduleTopic = "%DLQ%x"
	require.ErrorContains(t, c.Validate(), "schedule_topic")
}

// The watch reads both topics' routes: a broker either lists is routed, with the master
// address either gives.
func TestBrokerWatchWatchesBothTopics(t *testing.T) {
	t.Parallel()
	w := NewBrokerWatch(Config{Topic: "T1", ScheduleTopic: "T1_SCHEDULE"}, 0, nil)
	require.Equal(t, []string{"T1", "T1_SCHEDULE"}, w.topics)
	require.Equal(t, []string{"T1"}, NewBrokerWatch(Config{Topic: "T1"}, 0, nil).topics)
}
