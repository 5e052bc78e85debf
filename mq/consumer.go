package mq

import (
	rmqconsumer "github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// Subscriber names a clustering consumer: its group on the name servers, an instance name to
// tell several consumers of one group in one process apart (tests; empty in production), and
// ACL credentials when the broker has them.
type Subscriber struct {
	NameServers []string
	Group       string
	Instance    string
	AccessKey   string
	SecretKey   string
}

// ConsumerOptions returns the options every job-service consumer shares, followed by extra.
// Consumers differ in batch size, goroutines and retry bounds; where a queue starts is decided
// here once for all of them.
func (s Subscriber) ConsumerOptions(extra ...rmqconsumer.Option) []rmqconsumer.Option {
	o := []rmqconsumer.Option{
		rmqconsumer.WithNameServer(s.NameServers),
		rmqconsumer.WithGroupName(s.Group),
		rmqconsumer.WithConsumerModel(rmqconsumer.Clustering),
		// A queue without a committed offset (a new group, or a queue whose previous owner died
		// before its first offset commit) starts from its first message, not its last: with
		// "last", messages published before the takeover would be skipped. Replaying old
		// messages is harmless for our consumers: the ledger skips finished runs, Decode
		// rejects stale ones, and file events are re-checked against their rows.
		rmqconsumer.WithConsumeFromWhere(rmqconsumer.ConsumeFromFirstOffset),
	}
	if s.Instance != "" {
		o = append(o, rmqconsumer.WithInstance(s.Instance))
	}
	if s.AccessKey != "" {
		o = append(o, rmqconsumer.WithCredentials(primitive.Credentials{AccessKey: s.AccessKey, SecretKey: s.SecretKey}))
	}
	return append(o, extra...)
}
