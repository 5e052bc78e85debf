// Package mq wraps the RocketMQ client for what job-service does with it: publish job
// envelopes (as timer messages when they are due later) and make sure topics exist. The
// consumer side lives in package consumer, which owns the consume loop.
package mq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"

	"github.com/chatplat/job-service/job"
)

// Config is the RocketMQ section of the service's config.
type Config struct {
	// NameServers are the namesrv addresses, host:port.
	NameServers []string `yaml:"name_servers"`
	// Topic is the job topic: forced runs (jobctl run, the API, retries), events, and anything
	// other producers publish.
	Topic string `yaml:"topic"`
	// ScheduleTopic is where the ticker publishes fires (trigger schedule, and the runs its
	// repair pass republishes as schedule or recovery). Every node consumes it in a group of
	// its own (ScheduleGroup), so fires never queue behind forced runs. Topic +
	// "_SCHEDULE" unless set.
	ScheduleTopic string `yaml:"schedule_topic" deprecated:"set rocketmq.topic; the schedule topic is its name + _SCHEDULE"`
	// ConsumerGroup is the group every node's job consumer joins; the schedule topic's
	// consumer joins ScheduleGroup() (ConsumerGroup + "-schedule").
	ConsumerGroup string `yaml:"consumer_group"`
	// ProducerGroup names the producers (the ticker, jobctl, the consumer's re-publish):
	// ConsumerGroup + "-producer" unless set. The broker uses a producer group only for
	// transactional messages, which this service does not send.
	ProducerGroup string `yaml:"producer_group" deprecated:"set rocketmq.consumer_group; the producer group is its name + -producer"`
	// BrokerAddrs, when set, are brokers on which the job and schedule topics are created at
	// start.
	BrokerAddrs []string `yaml:"broker_addrs"`
	// QueueNums is the queue count of topics created at start; shard messages spread over them.
	// Queues are the unit of balance: with 8 queues and 3 nodes one node holds 3 and sets the
	// pace, so the default 12 divides evenly among 1, 2, 3, 4 or 6 nodes.
	QueueNums int `yaml:"queue_nums"`
	// SendTimeout bounds one publish.
	SendTimeout time.Duration `yaml:"send_timeout"`
	// AccessKey and SecretKey for a broker with ACL on.
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if len(c.NameServers) == 0 {
		c.NameServers = []string{"127.0.0.1:9876"}
	}
	if c.Topic == "" {
		c.Topic = job.DefaultTopic
	}
	if c.ScheduleTopic == "" {
		c.ScheduleTopic = c.Topic + ScheduleTopicSuffix
	}
	if c.ConsumerGroup == "" {
		c.ConsumerGroup = job.DefaultConsumerGroup
	}
	if c.ProducerGroup == "" {
		c.ProducerGroup = c.ConsumerGroup + ProducerGroupSuffix
	}
	if c.QueueNums == 0 {
		c.QueueNums = 12
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = 5 * time.Second
	}
	return c
}

// Validate names the first bad key.
func (c Config) Validate() error {
	switch {
	case len(c.NameServers) == 0:
		return errors.New("name_servers: at least one namesrv address is required")
	case c.Topic == "":
		return errors.New("topic: required")
	case c.ScheduleTopic == "":
		return errors.New("schedule_topic: required")
	case c.ScheduleTopic == c.Topic:
		return fmt.Errorf("schedule_topic: %q is the job topic; fires need a topic of their own", c.ScheduleTopic)
	case !validTopic(c.ScheduleTopic):
		return fmt.Errorf("schedule_topic: %q is not a topic name (letters, digits, _ and -, at most 127)", c.ScheduleTopic)
	case c.ConsumerGroup == "":
		return errors.New("consumer_group: required")
	case c.QueueNums < 1 || c.QueueNums > 64:
		return fmt.Errorf("queue_nums: %d is outside 1..64", c.QueueNums)
	case c.SendTimeout < 100*time.Millisecond:
		return fmt.Errorf("send_timeout: %s is below 100ms", c.SendTimeout)
	}
	return nil
}

// ScheduleTopicSuffix makes the default schedule topic's name from the job topic's.
const ScheduleTopicSuffix = "_SCHEDULE"

// ProducerGroupSuffix makes the producer group's name from the consumer group's.
const ProducerGroupSuffix = "-producer"

// ScheduleGroupSuffix makes the schedule topic's consumer group from the job group.
const ScheduleGroupSuffix = "-schedule"

// ScheduleGroup is the consumer group of the schedule topic: the job group's name +
// "-schedule". A group of its own gives the schedule topic's consumer its own offsets,
// rebalance, retry topic and dead-letter queue.
func (c Config) ScheduleGroup() string { return c.ConsumerGroup + ScheduleGroupSuffix }

// validTopic reports whether name is a topic name the broker accepts for a topic of ours
// (RocketMQ allows also % and |, which mark its system topics).
func validTopic(name string) bool {
	if name == "" || len(name) > 127 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func (c Config) credentials() primitive.Credentials {
	return primitive.Credentials{AccessKey: c.AccessKey, SecretKey: c.SecretKey}
}

// Producer publishes job envelopes: fires to the schedule topic, everything else to the job
// topic (TopicFor).
type Producer struct {
	p             rocketmq.Producer
	topic         string
	scheduleTopic string
	sel           *placementSelector
}

// NewProducer starts a producer. instance distinguishes several clients in one process.
func NewProducer(cfg Config, instance string) (*Producer, error) {
	sel := newPlacementSelector()
	opts := []producer.Option{
		producer.WithNameServer(cfg.NameServers),
		producer.WithGroupName(cfg.ProducerGroup),
		producer.WithRetry(2),
		producer.WithSendMsgTimeout(cfg.SendTimeout),
		// Shards of one run on distinct nodes, runs spread over all (selector.go).
		producer.WithQueueSelector(sel),
	}
	if instance != "" {
		opts = append(opts, producer.WithInstanceName(instance))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, producer.WithCredentials(cfg.credentials()))
	}
	p, err := rocketmq.NewProducer(opts...)
	if err != nil {
		return nil, fmt.Errorf("create producer: %w", err)
	}
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("start producer (namesrv %v): %w", cfg.NameServers, err)
	}
	return &Producer{p: p, topic: cfg.Topic, scheduleTopic: cfg.WithDefaults().ScheduleTopic, sel: sel}, nil
}

// AvoidBrokers makes later sends leave out the queues of brokers for which avoid reports true,
// while another broker has queues (BrokerWatch.Avoided). A frozen broker stays in the route
// for two minutes, and each send placed on it would wait send_timeout before the retry.
func (p *Producer) AvoidBrokers(avoid func(broker string) bool) { p.sel.avoid.Store(&avoid) }

// Close stops the producer.
func (p *Producer) Close() error { return p.p.Shutdown() }

// TopicFor is the topic env goes to: the schedule topic for a fire (trigger schedule or
// recovery: the ticker's occurrences and its republishes of them), the job topic otherwise.
func (p *Producer) TopicFor(env job.Envelope) string {
	return topicFor(env, p.topic, p.scheduleTopic)
}

func topicFor(env job.Envelope, jobTopic, scheduleTopic string) string {
	if (env.Trigger == job.TriggerSchedule || env.Trigger == job.TriggerRecovery) && scheduleTopic != "" {
		return scheduleTopic
	}
	return jobTopic
}

// Publish sends env to its topic (TopicFor): tag = job kind, key = run key, on the queue QueueFor
// places its shard. When deliverAt is in the future the message is a timer message the
// broker holds until then (and then delivers to that queue).
func (p *Producer) Publish(ctx context.Context, env job.Envelope, deliverAt time.Time) (string, error) {
	rc, err := p.Send(ctx, env, deliverAt)
	return rc.MsgID, err
}

// Send is Publish that also says where the message went (broker and queue): the ticker keeps
// that with the run, so when the broker leaves the cluster its runs are published again.
func (p *Producer) Send(ctx context.Context, env job.Envelope, deliverAt time.Time) (job.Receipt, error) {
	return p.publishEnvelope(ctx, env, deliverAt, Rotation(env.RunKey))
}

// Republish sends env again for the repair pass, turn being how many times it was
// republished. Its placement is drawn afresh for each turn: the queue the run was first sent
// to may belong to a node that is frozen or gone but still counted in the group, and a
// republish there would wait for the same node again.
func (p *Producer) Republish(ctx context.Context, env job.Envelope, turn int) (string, error) {
	rc, err := p.publishEnvelope(ctx, env, time.Time{}, Rotation(fmt.Sprintf("%s#%d", env.RunKey, turn)))
	return rc.MsgID, err
}

// publishEnvelope sends env to its topic on the queue its shard and rotation place it.
func (p *Producer) publishEnvelope(ctx context.Context, env job.Envelope, deliverAt time.Time, rotation uint32) (job.Receipt, error) {
	body, err := job.Encode(env)
	if err != nil {
		return job.Receipt{}, fmt.Errorf("publish %s/%s: %w", env.Job, env.RunKey, err)
	}
	place := fmt.Sprintf("%d/%d/%d", env.Shard.Index, env.Shard.Total, rotation)
	return p.publish(ctx, p.TopicFor(env), env.Job, []string{env.RunKey}, body, deliverAt, place)
}

// PublishRaw sends body as is; tests and jobctl use it for messages of other shapes.
func (p *Producer) PublishRaw(ctx context.Context, topic, tag string, keys []string, body []byte, deliverAt time.Time) (string, error) {
	rc, err := p.publish(ctx, topic, tag, keys, body, deliverAt, "")
	return rc.MsgID, err
}

func (p *Producer) publish(ctx context.Context, topic, tag string, keys []string, body []byte, deliverAt time.Time, place string) (job.Receipt, error) {
	msg := primitive.NewMessage(topic, body)
	if place != "" {
		msg.WithProperty(shardProperty, place)
	}
	if tag != "" {
		msg.WithTag(tag)
	}
	if len(keys) > 0 {
		msg.WithKeys(keys)
	}
	if time.Until(deliverAt) > 0 {
		msg.WithDelayTimestamp(deliverAt)
	}
	return p.send(ctx, topic, msg)
}

// routeRetries bounds the sends of one message that the client refuses for want of a route.
// A client's first sends to a topic race its own route lookup: one send can find the topic's
// queues before the broker's address is stored, and the client then fails it at once with
// "route info not found", without its own retry (a node starting its file GC saw this). The
// next try finds the address.
const routeRetries = 3

func (p *Producer) send(ctx context.Context, topic string, msg *primitive.Message) (job.Receipt, error) {
	res, err := p.p.SendSync(ctx, msg)
	for i := 1; i <= routeRetries && err != nil && strings.Contains(err.Error(), "route info not found"); i++ {
		t := time.NewTimer(time.Duration(i) * 100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return job.Receipt{}, fmt.Errorf("send to %s: %w", topic, err)
		case <-t.C:
		}
		res, err = p.p.SendSync(ctx, msg)
	}
	if err != nil {
		return job.Receipt{}, fmt.Errorf("send to %s: %w", topic, err)
	}
	if res.Status != primitive.SendOK {
		return job.Receipt{}, fmt.Errorf("send to %s: broker answered status %d", topic, res.Status)
	}
	rc := job.Receipt{MsgID: res.MsgID, Queue: -1}
	if q := res.MessageQueue; q != nil {
		rc.Broker, rc.Queue = q.BrokerName, q.QueueId
	}
	return rc, nil
}

// EnsureTopics creates topics on every broker in cfg.BrokerAddrs (creating an existing topic
// updates it in place). Production clusters usually manage topics themselves and leave
// broker_addrs empty.
func EnsureTopics(ctx context.Context, cfg Config, topics ...string) error {
	if len(cfg.BrokerAddrs) == 0 {
		return nil
	}
	opts := []admin.AdminOption{admin.WithResolver(primitive.NewPassthroughResolver(cfg.NameServers))}
	if cfg.AccessKey != "" {
		opts = append(opts, admin.WithCredentials(cfg.credentials()))
	}
	adm, err := admin.NewAdmin(opts...)
	if err != nil {
		return fmt.Errorf("rocketmq admin: %w", err)
	}
	defer adm.Close() //nolint:errcheck // best effort on a short-lived client
	for _, broker := range cfg.BrokerAddrs {
		for _, t := range topics {
			queues := cfg.QueueNums
			if strings.HasPrefix(t, RetryTopicPrefix) {
				queues = 1 // what the broker itself gives a retry topic
			}
			err := adm.CreateTopic(ctx, admin.WithTopicCreate(t), admin.WithBrokerAddrCreate(broker),
				admin.WithReadQueueNums(queues), admin.WithWriteQueueNums(queues))
			if err != nil {
				return fmt.Errorf("create topic %s on %s: %w", t, broker, err)
			}
		}
	}
	return nil
}

// RetryTopicPrefix names a consumer group's retry topic: %RETRY%<group>.
const RetryTopicPrefix = "%RETRY%"

// RetryTopic returns the retry topic of group. Creating it up front matters: the broker makes
// it only at the group's first heartbeat, and the client looks routes up every 30 s, so the
// first retries of a new group would otherwise wait that long.
func RetryTopic(group string) string { return RetryTopicPrefix + group }
