package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/chatplat/job-service/mq"
)

// NewTopic creates one more unique topic on the broker of cfg (a second topic beside the
// job topic NewMQ made, such as a file-event topic) and deletes it at cleanup.
func NewTopic(t testing.TB, cfg mq.Config, prefix string) string {
	t.Helper()
	Integration(t)
	name := prefix + Suffix()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := mq.EnsureTopics(ctx, cfg, name); err != nil {
		t.Fatalf("testenv: create topic %s: %v", name, err)
	}
	t.Cleanup(func() { deleteTopic(t, name) })
	waitRoutable(ctx, t, cfg, name)
	return name
}

// waitRoutable waits until the name servers give a route for topic. The broker registers a
// new topic with them a moment after creating it; a producer that sends in between (a node
// started at once, deferring file events to this topic) fails with "route info not found".
func waitRoutable(ctx context.Context, t testing.TB, cfg mq.Config, topic string) {
	t.Helper()
	adm, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver(cfg.NameServers)))
	if err != nil {
		t.Fatalf("testenv: rocketmq admin: %v", err)
	}
	defer adm.Close() //nolint:errcheck // best effort on a short-lived client
	for {
		queues, err := adm.FetchPublishMessageQueues(ctx, topic)
		if err == nil && len(queues) > 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("testenv: topic %s has no route on %v: %v", topic, cfg.NameServers, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// NewRetryTopic creates the retry topic of group (%RETRY%<group>) up front, so the group's
// first redelivery does not wait for a rebalance to discover it; deleted at cleanup.
func NewRetryTopic(t testing.TB, cfg mq.Config, group string) {
	t.Helper()
	Integration(t)
	name := "%RETRY%" + group
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := mq.EnsureTopics(ctx, cfg, name); err != nil {
		t.Fatalf("testenv: create topic %s: %v", name, err)
	}
	t.Cleanup(func() { deleteTopic(t, name) })
}
