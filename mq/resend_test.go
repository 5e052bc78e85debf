package mq_test

import (
	"context"
	"testing"
	"time"

	rmqconsumer "github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/mq"
)

// A copy sent back by a batch consumer arrives through the real broker with the body, tag
// and keys of the original, and counts the resend in Reconsumed on top of the broker's own
// retries: the reconsume bound holds across copies.
func TestResendKeepsTheMessageAndCountsTheResend(t *testing.T) {
	t.Parallel()
	m := testenv.NewMQ(t, 1)
	p, err := mq.NewProducer(m.Config, "resend-"+testenv.Suffix())
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	orig := &primitive.MessageExt{Message: primitive.Message{Topic: m.Config.Topic, Body: []byte(`{"job":"probe"}`)},
		ReconsumeTimes: 3}
	orig.WithTag("probe")
	orig.WithKeys([]string{"run-1"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = p.Resend(ctx, orig, m.Config.Topic, time.Time{})
	require.NoError(t, err)

	got := make(chan *primitive.MessageExt, 4)
	sub := mq.Subscriber{NameServers: m.Config.NameServers, Group: m.Config.ConsumerGroup, Instance: testenv.Suffix()}
	pc, err := sub.Subscribe(mq.Subscription{Topic: m.Config.Topic},
		func(_ context.Context, msgs ...*primitive.MessageExt) (rmqconsumer.ConsumeResult, error) {
			for _, msg := range msgs {
				got <- msg
			}
			return rmqconsumer.ConsumeSuccess, nil
		})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Shutdown() })
	select {
	case c := <-got:
		require.Equal(t, orig.Body, c.Body)
		require.Equal(t, "probe", c.GetTags())
		require.Equal(t, "run-1", c.GetKeys())
		require.Equal(t, 4, mq.Reconsumed(c), "three broker retries and one resend")
	case <-time.After(90 * time.Second):
		t.Fatal("the resent copy never arrived")
	}
}
