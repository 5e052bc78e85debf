package mq

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// shardProperty carries a job message's placement from Publish to the queue selector:
// "index/total/rotation". It is a user property of the message, so consumers see it too,
// which costs nothing and helps when reading a queue by hand.
const shardProperty = "JOBSVC_PLACE"

// Rotation is the per-run offset of a run's placement, from its run key: stable for the run
// (a republish of a shard lands where the shard was first sent) and spread over runs, also
// for a short-lived producer such as jobctl, whose round-robin would start at queue 0 every
// time.
func Rotation(runKey string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(runKey))
	return h.Sum32()
}

// QueueFor picks the queue (an index into the queues sorted by broker and queue id, the
// order the consumer's rebalance sorts them in) of shard index of total for a run with
// rotation. The consumers of a group split the sorted queues into contiguous blocks
// (rocketmq-client-go's default AllocateByAveragely: the first queues%consumers blocks one
// queue larger). With as many consumers as shards, shard k goes to block (k + rotation) mod
// total, so each shard lands on a different node, and to a queue inside that block chosen by
// the rest of the rotation, so successive runs use every queue. A single-shard run's block is
// all queues: the rotation alone spreads single runs over every node.
func QueueFor(rotation uint32, index, total, queues int) int {
	if queues <= 0 {
		return 0
	}
	if total < 1 {
		total = 1
	}
	if queues <= total { // one queue per consumer at most: plain round robin
		return int((uint64(rotation) + uint64(index)) % uint64(queues))
	}
	avg, mod := queues/total, queues%total
	b := int((uint64(rotation) + uint64(index)) % uint64(total))
	start := b*avg + min(b, mod)
	size := avg
	if b < mod {
		size++
	}
	return start + int((uint64(rotation)/uint64(total))%uint64(size))
}

// placementSelector sends job messages to the queue QueueFor names and anything else
// round-robin, leaving out the queues of brokers avoid names (gone: frozen or unreachable
// while the route still lists them) when others exist.
type placementSelector struct {
	fallback producer.QueueSelector
	avoid    atomic.Pointer[func(broker string) bool]
}

func newPlacementSelector() *placementSelector {
	return &placementSelector{fallback: producer.NewRoundRobinQueueSelector()}
}

// Select implements producer.QueueSelector. On a resend after a failure (lastBrokerName set)
// the failed broker's queues are left out when others exist.
func (s *placementSelector) Select(msg *primitive.Message, mqs []*primitive.MessageQueue, lastBrokerName string) *primitive.MessageQueue {
	if avoid := s.avoid.Load(); avoid != nil && len(mqs) > 0 {
		kept := make([]*primitive.MessageQueue, 0, len(mqs))
		for _, q := range mqs {
			if !(*avoid)(q.BrokerName) {
				kept = append(kept, q)
			}
		}
		if len(kept) > 0 {
			mqs = kept
		}
	}
	var index, total int
	var rot uint32
	if _, err := fmt.Sscanf(msg.GetProperty(shardProperty), "%d/%d/%d", &index, &total, &rot); err != nil || len(mqs) == 0 {
		return s.fallback.Select(msg, mqs, lastBrokerName)
	}
	qs := make([]*primitive.MessageQueue, 0, len(mqs))
	for _, q := range mqs {
		if lastBrokerName == "" || q.BrokerName != lastBrokerName {
			qs = append(qs, q)
		}
	}
	if len(qs) == 0 {
		qs = append(qs, mqs...)
	}
	slices.SortStableFunc(qs, func(a, b *primitive.MessageQueue) int {
		if c := strings.Compare(a.BrokerName, b.BrokerName); c != 0 {
			return c
		}
		return a.QueueId - b.QueueId
	})
	return qs[QueueFor(rot, index, total, len(qs))]
}
