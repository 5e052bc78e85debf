package testenv

import (
	"context"
	"testing"
	"time"

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
	return name
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
