package mq

import (
	"fmt"
	"testing"

	rmqconsumer "github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/stretchr/testify/require"
)

// owners is which consumer the group's default allocation gives each queue, for consumers
// c0..c(n-1), computed by rocketmq-client-go's own AllocateByAveragely.
func owners(queues, consumers int) []string {
	mqs := make([]*primitive.MessageQueue, queues)
	for i := range mqs {
		mqs[i] = &primitive.MessageQueue{Topic: "t", BrokerName: "b", QueueId: i}
	}
	cids := make([]string, consumers)
	for i := range cids {
		cids[i] = fmt.Sprintf("c%d", i)
	}
	out := make([]string, queues)
	for _, c := range cids {
		for _, q := range rmqconsumer.AllocateByAveragely("g", c, mqs, cids) {
			out[q.QueueId] = c
		}
	}
	return out
}

// With as many consumers as shards, every run's shards land on distinct consumers, whatever
// the rotation; over rotations every queue is used.
func TestQueueForOneShardPerConsumer(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ queues, shards int }{{12, 3}, {8, 3}, {12, 2}, {12, 4}, {5, 3}, {2, 3}, {16, 5}} {
		own := owners(c.queues, c.shards)
		used := map[int]bool{}
		for rot := uint32(0); rot < 200; rot++ {
			seen := map[string]bool{}
			for i := 0; i < c.shards; i++ {
				q := QueueFor(rot*2654435761, i, c.shards, c.queues)
				require.True(t, q >= 0 && q < c.queues, "%+v rot %d: queue %d", c, rot, q)
				used[q] = true
				seen[own[q]] = true
			}
			require.Len(t, seen, min(c.shards, c.queues), "%+v rot %d: shards share a consumer", c, rot)
		}
		require.Len(t, used, c.queues, "%+v: every queue used over runs", c)
	}
}

// Single-shard runs spread over every queue, so over every consumer.
func TestQueueForSingleShardSpreads(t *testing.T) {
	t.Parallel()
	used := map[int]int{}
	for i := 0; i < 1200; i++ {
		used[QueueFor(Rotation(fmt.Sprintf("manual:%d", i)), 0, 1, 12)]++
	}
	require.Len(t, used, 12)
	for q, n := range used {
		require.Greater(t, n, 50, "queue %d got %d of 1200", q, n)
	}
}

func TestPlacementSelectorSortsAndAvoidsFailedBroker(t *testing.T) {
	t.Parallel()
	s := newPlacementSelector()
	var mqs []*primitive.MessageQueue
	for _, b := range []string{"b2", "b1"} { // route order is not the consumer's order
		for q := 3; q >= 0; q-- {
			mqs = append(mqs, &primitive.MessageQueue{Topic: "t", BrokerName: b, QueueId: q})
		}
	}
	msg := primitive.NewMessage("t", nil)
	msg.WithProperty(shardProperty, "1/2/0")
	got := s.Select(msg, mqs, "")
	require.Equal(t, "b2", got.BrokerName) // sorted b1 0..3, b2 0..3; shard 1 of 2 starts at index 4
	require.Equal(t, 0, got.QueueId)
	got = s.Select(msg, mqs, "b2")
	require.Equal(t, "b1", got.BrokerName)
	// Messages without a placement go round-robin.
	require.NotNil(t, s.Select(primitive.NewMessage("t", nil), mqs, ""))
}

// A broker the watch found gone (frozen, still routed) gets no sends while another
// broker has queues, placed or round-robin; when it is the only one left, it still gets them.
func TestPlacementSelectorAvoidsGoneBrokers(t *testing.T) {
	t.Parallel()
	s := newPlacementSelector()
	var mqs []*primitive.MessageQueue
	for _, b := range []string{"b1", "b2"} {
		for q := range 4 {
			mqs = append(mqs, &primitive.MessageQueue{Topic: "t", BrokerName: b, QueueId: q})
		}
	}
	gone := func(b string) bool { return b == "b2" }
	p := &Producer{sel: s}
	p.AvoidBrokers(gone)
	for rot := range 50 {
		msg := primitive.NewMessage("t", nil)
		msg.WithProperty(shardProperty, fmt.Sprintf("0/1/%d", rot))
		require.Equal(t, "b1", s.Select(msg, mqs, "").BrokerName)
		require.Equal(t, "b1", s.Select(primitive.NewMessage("t", nil), mqs, "").BrokerName)
	}
	msg := primitive.NewMessage("t", nil)
	msg.WithProperty(shardProperty, "0/1/7")
	require.Equal(t, "b2", s.Select(msg, mqs[4:], "").BrokerName, "the only broker left")
}
