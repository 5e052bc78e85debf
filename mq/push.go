package mq

import (
	"context"
	"fmt"

	"github.com/apache/rocketmq-client-go/v2"
	rmqconsumer "github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// HandleFunc takes the messages of one delivery and says whether they were consumed.
type HandleFunc func(ctx context.Context, msgs ...*primitive.MessageExt) (rmqconsumer.ConsumeResult, error)

// Push is a started clustering push consumer: the part of the job consumer and the file GC
// consumer that only talks to RocketMQ. What each does with a message stays with it.
type Push struct {
	pc    rocketmq.PushConsumer
	group string
}

// Subscription is what a push consumer takes: a topic, a tag expression ("a || b"; empty
// means all tags) and the options it adds to the shared ones (batch size, goroutines, retry
// bounds).
type Subscription struct {
	Topic string
	Tags  string
	Extra []rmqconsumer.Option
}

// Subscribe creates a push consumer of s's group with the shared options, subscribes handle
// to sub.Topic (which must exist) and starts pulling.
func (s Subscriber) Subscribe(sub Subscription, handle HandleFunc) (*Push, error) {
	pc, err := rocketmq.NewPushConsumer(s.ConsumerOptions(sub.Extra...)...)
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", s.Group, err)
	}
	sel := rmqconsumer.MessageSelector{}
	if sub.Tags != "" {
		sel = rmqconsumer.MessageSelector{Type: rmqconsumer.TAG, Expression: sub.Tags}
	}
	if err := pc.Subscribe(sub.Topic, sel, handle); err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", sub.Topic, err)
	}
	if err := pc.Start(); err != nil {
		return nil, fmt.Errorf("start consumer %s on %s: %w", s.Group, sub.Topic, err)
	}
	return &Push{pc: pc, group: s.Group}, nil
}

// Suspend stops pulling at once; messages already handed over still finish. Safe more than
// once.
func (p *Push) Suspend() {
	if s, ok := p.pc.(interface{ Suspend() }); ok {
		s.Suspend()
	}
}

// Shutdown persists offsets and closes the client.
func (p *Push) Shutdown() error {
	if err := p.pc.Shutdown(); err != nil {
		return fmt.Errorf("shutdown consumer %s: %w", p.group, err)
	}
	return nil
}

// EnsureGroupTopics creates topics and group's retry topic when missing: a consumer only
// subscribes to its retry topic once it exists (at its next rebalance, 20 s), so a message it
// sends back for retry would otherwise wait or be lost.
func EnsureGroupTopics(ctx context.Context, cfg Config, group string, topics ...string) error {
	return EnsureTopics(ctx, cfg, append(topics, RetryTopic(group))...)
}
