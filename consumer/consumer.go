package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/apache/rocketmq-client-go/v2"
	rmqconsumer "github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/chatplat/job-service/mq"
)

// Options identify the subscription of a Consumer.
type Options struct {
	NameServers []string
	Topic       string
	Group       string
	// Instance distinguishes consumers of one group in one process (tests start several
	// nodes in one process); empty in production, where each node is its own process.
	Instance  string
	AccessKey string
	SecretKey string
	// Tags, when set, is a tag expression ("a || b"); default all.
	Tags string
}

// Consumer is a clustering push consumer that hands every message to a Processor. The topic's
// queues are balanced across all nodes of the group, so adding a node spreads the work.
type Consumer struct {
	opts Options
	proc *Processor
	log  *slog.Logger

	pc        rocketmq.PushConsumer
	baseCtx   context.Context
	cancel    context.CancelFunc
	hbDone    chan struct{}
	stopOnce  sync.Once
	goroutine int
}

// New returns a consumer; Start subscribes and starts it.
func New(opts Options, proc *Processor, log *slog.Logger) *Consumer {
	return &Consumer{opts: opts, proc: proc, log: log, goroutine: proc.cfg.Goroutines}
}

// Start subscribes to the topic and starts consuming. The topic must exist.
func (c *Consumer) Start(ctx context.Context) error {
	sub := mq.Subscriber{NameServers: c.opts.NameServers, Group: c.opts.Group, Instance: c.opts.Instance,
		AccessKey: c.opts.AccessKey, SecretKey: c.opts.SecretKey}
	o := sub.ConsumerOptions(
		rmqconsumer.WithConsumeMessageBatchMaxSize(1),
		rmqconsumer.WithConsumeGoroutineNums(c.goroutine),
		// We send to the DLQ ourselves when a job's attempts run out; this only bounds
		// messages that keep failing before a claim (a database that stays down).
		rmqconsumer.WithMaxReconsumeTimes(16),
	)
	pc, err := rocketmq.NewPushConsumer(o...)
	if err != nil {
		return fmt.Errorf("create consumer %s: %w", c.opts.Group, err)
	}
	sel := rmqconsumer.MessageSelector{}
	if c.opts.Tags != "" {
		sel = rmqconsumer.MessageSelector{Type: rmqconsumer.TAG, Expression: c.opts.Tags}
	}
	// Runs outlive the Start caller's context; they end with Stop.
	c.baseCtx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if err := pc.Subscribe(c.opts.Topic, sel, c.handle); err != nil {
		return fmt.Errorf("subscribe %s: %w", c.opts.Topic, err)
	}
	if err := pc.Start(); err != nil {
		return fmt.Errorf("start consumer %s on %s: %w", c.opts.Group, c.opts.Topic, err)
	}
	c.pc = pc
	c.hbDone = make(chan struct{})
	go func() {
		defer close(c.hbDone)
		c.proc.HeartbeatLoop(c.baseCtx)
	}()
	c.log.Info("consumer started", "topic", c.opts.Topic, "group", c.opts.Group, "instance", c.opts.Instance)
	return nil
}

func (c *Consumer) handle(ctx context.Context, msgs ...*primitive.MessageExt) (rmqconsumer.ConsumeResult, error) {
	concCtx, _ := primitive.GetConcurrentlyCtx(ctx)
	// Batch size is 1; should the client hand over more, the worst decision wins for all.
	result := rmqconsumer.ConsumeSuccess
	for _, m := range msgs {
		d := c.proc.Process(c.baseCtx, Delivery{Body: m.Body, MsgID: m.MsgId, Tag: m.GetTags(),
			ReconsumeTimes: int(m.ReconsumeTimes), Topic: m.Topic})
		switch d.Action {
		case RetryLater:
			result = rmqconsumer.ConsumeRetryLater
			if concCtx != nil {
				concCtx.DelayLevelWhenNextConsume = mq.DelayLevelFor(d.After)
			}
		case DeadLetter:
			result = rmqconsumer.ConsumeRetryLater
			if concCtx != nil {
				concCtx.DelayLevelWhenNextConsume = -1 // straight to %DLQ%<group>
			}
		}
	}
	return result, nil
}

// Pause stops pulling and keeps any handler from starting, at once (the drain that Stop then
// waits for began). Safe to call before Stop, and more than once.
func (c *Consumer) Pause() {
	c.proc.BeginDrain()
	if c.pc == nil {
		return
	}
	if s, ok := c.pc.(interface{ Suspend() }); ok {
		s.Suspend()
	}
}

// Stop drains runs in flight (see Processor.Drain) and shuts the client down. It is
// idempotent and returns how many runs were interrupted.
func (c *Consumer) Stop(ctx context.Context) (interrupted int, err error) {
	c.stopOnce.Do(func() {
		if c.pc == nil {
			return
		}
		// Stop pulling first so the drain is not fed new work.
		c.Pause()
		interrupted = c.proc.Drain(ctx)
		c.cancel()
		<-c.hbDone
		err = c.pc.Shutdown()
		if err != nil {
			err = fmt.Errorf("shutdown consumer %s: %w", c.opts.Group, err)
		}
	})
	return interrupted, err
}
