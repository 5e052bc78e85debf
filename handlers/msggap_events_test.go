package handlers

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	rmqconsumer "github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/mq"
)

// Each persistent gap goes to the configured topic as one repair event, tagged by kind, on the
// real broker; the alert (the Discard) is unchanged. Off by default.
func TestMsgGapPublishesRepairEvents(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	m := testenv.NewMQ(t, 4)
	topic := testenv.NewTopic(t, m.Config, "gaprepair_")
	msgs(t, s, 1, seqs(1, 10, 5*time.Minute, 4, 5, 8)) // missing 4-5 and 8
	msgs(t, s, 2, seqs(1, 4, 5*time.Minute, 3))        // missing 3
	msgs(t, s, 3, seqs(1, 6, 10*time.Second, 5))       // missing 5, but too young: not an event

	type got struct {
		Tag string
		Key string
		Ev  GapEvent
	}
	var mu sync.Mutex
	var events []got
	pc, err := rocketmq.NewPushConsumer(
		rmqconsumer.WithNameServer(m.Config.NameServers),
		rmqconsumer.WithGroupName("gapsub_"+testenv.Suffix()),
		rmqconsumer.WithInstance("gapsub-"+testenv.Suffix()),
		rmqconsumer.WithConsumerModel(rmqconsumer.Clustering),
		rmqconsumer.WithConsumeFromWhere(rmqconsumer.ConsumeFromFirstOffset))
	require.NoError(t, err)
	require.NoError(t, pc.Subscribe(topic, rmqconsumer.MessageSelector{Type: rmqconsumer.TAG, Expression: "lost_range"},
		func(_ context.Context, ms ...*primitive.MessageExt) (rmqconsumer.ConsumeResult, error) {
			mu.Lock()
			defer mu.Unlock()
			for _, msg := range ms {
				var ev GapEvent
				if err := json.Unmarshal(msg.Body, &ev); err != nil {
					return rmqconsumer.ConsumeRetryLater, err
				}
				events = append(events, got{Tag: msg.GetTags(), Key: msg.GetKeys(), Ev: ev})
			}
			return rmqconsumer.ConsumeSuccess, nil
		}))
	require.NoError(t, pc.Start())
	t.Cleanup(func() { _ = pc.Shutdown() })

	prod, err := mq.NewProducer(m.Config, "gap-"+testenv.Suffix())
	require.NoError(t, err)
	t.Cleanup(func() { _ = prod.Close() })

	// Off by default: nothing is published (the nil publisher is never reached).
	off := newMsgGap(t, s, MsgGapConfig{})
	res, err := handlertest.Run(context.Background(), off, gapRun())
	require.True(t, job.IsDiscard(err))
	require.Zero(t, res.(MsgGapResult).EventsPublished)

	cfg := MsgGapConfig{Events: GapEventsConfig{Enabled: true, Topic: topic, Tags: map[string]string{GapKindSeq: "lost_range"}}}
	h, err := NewMsgGap(s.Pool, cfg, prod, func() time.Time { return gapNow }, testenv.Logger(t))
	require.NoError(t, err)
	run := &job.Run[MsgGapArgs]{Envelope: job.Envelope{Job: MsgGapKind, RunKey: "schedule:msg_gap_check:test"}, Attempt: 1}
	res, err = h.Run(context.Background(), run)
	require.True(t, job.IsDiscard(err), "the alert still goes out: %v", err)
	require.Equal(t, 3, res.(MsgGapResult).EventsPublished)

	testenv.Eventually(t, 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(events) >= 3
	}, "three repair events consumed")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, events, 3)
	sort.Slice(events, func(i, j int) bool { return events[i].Key < events[j].Key })
	want := []GapEvent{
		{Version: 1, Kind: GapKindSeq, Key: "chat_messages:1:4-5", Table: "chat_messages", ChannelID: 1, FromSeq: 4, ToSeq: 5,
			SeenAt: gapNow.Add(-9 * time.Minute).UTC(), DetectedAt: gapNow.UTC(), Job: MsgGapKind, RunKey: run.RunKey},
		{Version: 1, Kind: GapKindSeq, Key: "chat_messages:1:8-8", Table: "chat_messages", ChannelID: 1, FromSeq: 8, ToSeq: 8,
			SeenAt: gapNow.Add(-6 * time.Minute).UTC(), DetectedAt: gapNow.UTC(), Job: MsgGapKind, RunKey: run.RunKey},
		{Version: 1, Kind: GapKindSeq, Key: "chat_messages:2:3-3", Table: "chat_messages", ChannelID: 2, FromSeq: 3, ToSeq: 3,
			SeenAt: gapNow.Add(-5 * time.Minute).UTC(), DetectedAt: gapNow.UTC(), Job: MsgGapKind, RunKey: run.RunKey},
	}
	for i, e := range events {
		require.Equal(t, "lost_range", e.Tag)
		require.Equal(t, want[i].Key, e.Key, "the message key is the gap's key")
		e.Ev.SeenAt, e.Ev.DetectedAt = e.Ev.SeenAt.UTC(), e.Ev.DetectedAt.UTC()
		require.Equal(t, want[i], e.Ev)
	}
}

func TestGapEventsConfigRefusesBadKeys(t *testing.T) {
	t.Parallel()
	for key, c := range map[string]MsgGapConfig{
		"repair_events.topic":        {Events: GapEventsConfig{Topic: "bad topic"}},
		"repair_events.tags.lost":    {Events: GapEventsConfig{Tags: map[string]string{"lost": "x"}}},
		"repair_events.tags.seq_gap": {Events: GapEventsConfig{Tags: map[string]string{GapKindSeq: "a||b"}}},
	} {
		require.ErrorContains(t, c.WithDefaults().Validate(), key)
	}
}
