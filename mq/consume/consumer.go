// Package consume is the RocketMQ side of the run consumer: a clustering push consumer that
// hands each delivery to a consumer.Processor lane and settles its decisions with the broker
// (acknowledge, send back, dead-letter). It sits apart from package mq, which the test
// environment imports, so that the processor compiles without the broker client and the
// broker client without the processor.
package consume

import (
	"context"
	"log/slog"
	"sync"
	"time"

	rmqconsumer "github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/chatplat/job-service/consumer"
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
	// Resend sends one message of a batch back on its own (see settle); nil: a batch with a
	// message that must come back goes back whole.
	Resend Resender
	// Lane is the processor's lane the messages go to: consumer.LaneJobs (the job topic) or
	// consumer.LaneSchedule (the schedule topic). The job lane's consumer also runs the
	// processor's heartbeat, which covers the runs of both lanes.
	Lane consumer.Lane
	// Now is the clock a resent copy's delay counts from; time.Now unless set.
	Now func() time.Time
}

// Resender sends a copy of one delivered message to topic, to be delivered at deliverAt
// (mq.Producer).
type Resender interface {
	Resend(ctx context.Context, m *primitive.MessageExt, topic string, deliverAt time.Time) (string, error)
}

// Consumer is a clustering push consumer that hands every delivery to a consumer.Processor's
// lane and settles the processor's decisions with the broker. The topic's queues are
// balanced across all nodes of the group, so adding a node spreads the work.
type Consumer struct {
	opts Options
	proc *consumer.Processor
	log  *slog.Logger

	pc        *mq.Push
	baseCtx   context.Context
	cancel    context.CancelFunc
	hbDone    chan struct{}
	stopOnce  sync.Once
	batch     int // messages per delivery
	goroutine int // deliveries at once
}

// NewConsumer returns a consumer; Start subscribes and starts it.
func New(opts Options, proc *consumer.Processor, log *slog.Logger) *Consumer {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// As many deliveries at once as messages in hand: a long run keeps its delivery until it
	// ends, and must not keep the node from taking other messages. Processor.ProcessLane
	// bounds the messages claimed and in hand.
	return &Consumer{opts: opts, proc: proc, log: log, batch: proc.ConsumeBatch(), goroutine: proc.InHand(opts.Lane)}
}

// Start subscribes to the topic and starts consuming. The topic must exist.
func (c *Consumer) Start(ctx context.Context) error {
	sub := mq.Subscriber{NameServers: c.opts.NameServers, Group: c.opts.Group, Instance: c.opts.Instance,
		AccessKey: c.opts.AccessKey, SecretKey: c.opts.SecretKey}
	// Runs outlive the Start caller's context; they end with Stop.
	c.baseCtx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	pc, err := sub.Subscribe(mq.Subscription{Topic: c.opts.Topic, Tags: c.opts.Tags, Extra: []rmqconsumer.Option{
		// A callback takes up to consume_batch messages of one queue, claimed together (see
		// Processor.ProcessLane).
		rmqconsumer.WithConsumeMessageBatchMaxSize(c.batch),
		rmqconsumer.WithPullBatchSize(int32(max(32, c.batch))),
		rmqconsumer.WithConsumeGoroutineNums(c.goroutine),
		rmqconsumer.WithMaxReconsumeTimes(maxReconsume),
	}}, c.handle)
	if err != nil {
		c.cancel()
		return err
	}
	c.pc = pc
	c.hbDone = make(chan struct{})
	go func() {
		defer close(c.hbDone)
		if c.opts.Lane == consumer.LaneJobs {
			c.proc.HeartbeatLoop(c.baseCtx)
		}
	}()
	c.log.Info("consumer started", "topic", c.opts.Topic, "group", c.opts.Group, "lane", c.opts.Lane.String(),
		"instance", c.opts.Instance)
	return nil
}

func (c *Consumer) handle(ctx context.Context, msgs ...*primitive.MessageExt) (rmqconsumer.ConsumeResult, error) {
	ds := make([]consumer.Delivery, len(msgs))
	for i, m := range msgs {
		ds[i] = consumer.Delivery{Body: m.Body, MsgID: m.MsgId, Tag: m.GetTags(), ReconsumeTimes: mq.Reconsumed(m), Topic: m.Topic}
	}
	decisions := c.proc.ProcessLane(c.baseCtx, c.opts.Lane, ds)
	concCtx, _ := primitive.GetConcurrentlyCtx(ctx)
	return c.settle(concCtx, msgs, decisions), nil
}

// Queues lists the message queues the consumer holds after its last rebalance, as
// "broker/topic/queue", sorted; nil before Start or when the client cannot say.
func (c *Consumer) Queues() []string {
	if c == nil || c.pc == nil {
		return nil
	}
	return c.pc.Queues()
}

// Pause stops pulling and keeps any handler from starting, at once (the drain that Stop then
// waits for began). Safe to call before Stop, and more than once.
func (c *Consumer) Pause() {
	c.proc.BeginDrain()
	if c.pc == nil {
		return
	}
	c.pc.Suspend()
}

// Stop drains runs in flight (see Processor.Drain) and shuts the client down. Runs the drain
// interrupted are logged; their messages are redelivered. Idempotent.
func (c *Consumer) Stop(ctx context.Context) error {
	var err error
	c.stopOnce.Do(func() {
		if c.pc == nil {
			return
		}
		// Stop pulling first so the drain is not fed new work.
		c.Pause()
		if interrupted := c.proc.Drain(ctx); interrupted > 0 {
			c.log.Warn("runs interrupted by shutdown; they will be redelivered", "runs", interrupted)
		}
		c.cancel()
		<-c.hbDone
		err = c.pc.Shutdown()
	})
	return err
}
