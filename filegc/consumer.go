package filegc

import (
	"context"
	"log/slog"
	"sync"
	"time"

	rmqconsumer "github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/chatplat/job-service/mq"
)

// ConsumerOptions identify the subscription.
type ConsumerOptions struct {
	NameServers []string
	// Instance distinguishes consumers of one group in one process (tests); empty in production.
	Instance  string
	AccessKey string
	SecretKey string
}

// Consumer is the clustering push consumer of the file-event group. It takes events in
// batches of Config.BatchSize and hands each batch to the Processor.
type Consumer struct {
	cfg  Config
	opts ConsumerOptions
	proc *Processor
	log  *slog.Logger

	pc       *mq.Push
	baseCtx  context.Context
	cancel   context.CancelFunc
	inFlight sync.WaitGroup
	stopOnce sync.Once
}

// NewConsumer returns a consumer; Start subscribes.
func NewConsumer(cfg Config, opts ConsumerOptions, proc *Processor, log *slog.Logger) *Consumer {
	return &Consumer{cfg: cfg, opts: opts, proc: proc, log: log}
}

// Start subscribes to the event topic (which must exist) and starts consuming.
func (c *Consumer) Start(ctx context.Context) error {
	sub := mq.Subscriber{NameServers: c.opts.NameServers, Group: c.cfg.Group, Instance: c.opts.Instance,
		AccessKey: c.opts.AccessKey, SecretKey: c.opts.SecretKey}
	c.baseCtx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	pc, err := sub.Subscribe(mq.Subscription{Topic: c.cfg.Topic, Tags: c.cfg.Tag + " || " + c.cfg.Tag + DeferredSuffix,
		Extra: []rmqconsumer.Option{
			rmqconsumer.WithConsumeMessageBatchMaxSize(c.cfg.BatchSize),
			rmqconsumer.WithPullBatchSize(int32(max(32, c.cfg.BatchSize))),
			rmqconsumer.WithConsumeGoroutineNums(c.cfg.Goroutines),
			rmqconsumer.WithPullInterval(c.pullInterval()),
			rmqconsumer.WithMaxReconsumeTimes(int32(c.cfg.MaxReconsume)),
		}}, c.handle)
	if err != nil {
		c.cancel()
		return err
	}
	c.pc = pc
	c.log.Info("file GC consumer started", "topic", c.cfg.Topic, "group", c.cfg.Group, "grace", c.cfg.Grace,
		"batch_size", c.cfg.BatchSize)
	return nil
}

func (c *Consumer) pullInterval() time.Duration {
	if c.cfg.PullInterval == nil {
		return 0
	}
	return *c.cfg.PullInterval
}

func (c *Consumer) handle(ctx context.Context, msgs ...*primitive.MessageExt) (rmqconsumer.ConsumeResult, error) {
	c.inFlight.Add(1)
	defer c.inFlight.Done()
	batch := make([]Delivery, len(msgs))
	for i, m := range msgs {
		batch[i] = Delivery{Body: m.Body, MsgID: m.MsgId, Tag: m.GetTags(), ReconsumeTimes: int(m.ReconsumeTimes)}
	}
	v := c.proc.Process(c.baseCtx, batch)
	if !v.Retry {
		return rmqconsumer.ConsumeSuccess, nil
	}
	if concCtx, ok := primitive.GetConcurrentlyCtx(ctx); ok {
		concCtx.DelayLevelWhenNextConsume = mq.DelayLevelFor(v.After)
	}
	return rmqconsumer.ConsumeRetryLater, nil
}

// Stop stops pulling, lets batches in flight finish within ctx, and shuts the client down.
// Idempotent. A batch cut short is redelivered: nothing it did is committed half-way.
func (c *Consumer) Stop(ctx context.Context) error {
	var err error
	c.stopOnce.Do(func() {
		if c.pc == nil {
			return
		}
		// Logged before pulling stops: a node's drain pauses the job consumer first, and this
		// line coming after that one in the log shows it did.
		c.log.Info("file GC consumer stopping: no new events")
		c.pc.Suspend()
		done := make(chan struct{})
		go func() { c.inFlight.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			c.cancel()
			<-done
		}
		c.cancel()
		err = c.pc.Shutdown()
	})
	return err
}
