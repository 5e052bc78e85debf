package consume

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	rmqconsumer "github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/consumer"
	"github.com/chatplat/job-service/mq"
)

// recResender records the messages sent back on their own; fail makes every send fail.
type recResender struct {
	mu   sync.Mutex
	fail bool
	sent []resent
}

type resent struct {
	body  string
	topic string
	at    time.Time
}

func (r *recResender) Resend(_ context.Context, m *primitive.MessageExt, topic string, at time.Time) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return "", errors.New("broker unreachable")
	}
	r.sent = append(r.sent, resent{body: string(m.Body), topic: topic, at: at})
	return "copy", nil
}

// jobMessages is what the client hands the callback: messages of the job topic.
func jobMessages(n int) []*primitive.MessageExt {
	msgs := make([]*primitive.MessageExt, n)
	for i := range msgs {
		msgs[i] = &primitive.MessageExt{Message: primitive.Message{Topic: "jobs", Body: []byte{byte('a' + i)}}, MsgId: string(rune('a' + i))}
	}
	return msgs
}

func settler(r Resender) *Consumer {
	return &Consumer{opts: Options{Topic: "jobs", Group: "g", Resend: r, Now: time.Now},
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), baseCtx: context.Background()}
}

// A delivery where one run failed (the others succeeded or were rejected): only the failed
// run comes back, on its own; the runs that were done are not redelivered. If the broker
// cannot take the copy, the delivery goes back whole at the failed run's delay.
func TestSettleSendsBackOnlyTheFailedRun(t *testing.T) {
	t.Parallel()
	msgs := jobMessages(4)
	decisions := []consumer.Decision{{Action: consumer.Ack}, {Action: consumer.RetryLater, After: 10 * time.Second, Reason: "boom"},
		{Action: consumer.Ack, Reason: "rejected"}, {Action: consumer.Ack}}
	r := &recResender{}
	before := time.Now()
	require.Equal(t, rmqconsumer.ConsumeSuccess, settler(r).settle(primitive.NewConsumeConcurrentlyContext(), msgs, decisions))
	require.Len(t, r.sent, 1, "only the failed run goes back")
	require.Equal(t, string(msgs[1].Body), r.sent[0].body)
	require.Equal(t, "jobs", r.sent[0].topic)
	require.WithinRange(t, r.sent[0].at, before.Add(decisions[1].After), time.Now().Add(decisions[1].After))

	conc := primitive.NewConsumeConcurrentlyContext()
	require.Equal(t, rmqconsumer.ConsumeRetryLater, settler(&recResender{fail: true}).settle(conc, msgs, decisions))
	require.Equal(t, mq.DelayLevelFor(decisions[1].After), conc.DelayLevelWhenNextConsume)
}

// A poisoned run on its last attempt in a delivery of healthy ones goes to the dead-letter
// queue on its own; if the copy cannot be sent, the delivery goes back to be retried, never
// whole to the dead-letter queue. Alone in its delivery it goes back as the client would send
// it: no copy.
func TestSettlePoisonedMessageGoesToTheDeadLetterQueueAlone(t *testing.T) {
	t.Parallel()
	msgs := jobMessages(3)
	decisions := []consumer.Decision{{Action: consumer.Ack}, {Action: consumer.DeadLetter, Reason: "handler panicked"}, {Action: consumer.Ack}}
	r := &recResender{}
	require.Equal(t, rmqconsumer.ConsumeSuccess, settler(r).settle(primitive.NewConsumeConcurrentlyContext(), msgs, decisions))
	require.Equal(t, []resent{{body: string(msgs[1].Body), topic: "%DLQ%g"}}, r.sent)

	conc := primitive.NewConsumeConcurrentlyContext()
	require.Equal(t, rmqconsumer.ConsumeRetryLater, settler(&recResender{fail: true}).settle(conc, msgs, decisions))
	require.Equal(t, 1, conc.DelayLevelWhenNextConsume, "the succeeded runs must not go to the dead-letter queue")

	conc = primitive.NewConsumeConcurrentlyContext()
	r = &recResender{}
	require.Equal(t, rmqconsumer.ConsumeRetryLater, settler(r).settle(conc, msgs[1:2], decisions[1:2]))
	require.Equal(t, -1, conc.DelayLevelWhenNextConsume)
	require.Empty(t, r.sent)
}

// A delivery whose every run is done (one of them cancelled by an operator) is consumed with
// nothing sent back.
func TestSettleAllDoneSendsNothingBack(t *testing.T) {
	t.Parallel()
	decisions := []consumer.Decision{{Action: consumer.Ack}, {Action: consumer.Ack, Reason: "cancelled by alice"}, {Action: consumer.Ack}}
	r := &recResender{}
	require.Equal(t, rmqconsumer.ConsumeSuccess, settler(r).settle(primitive.NewConsumeConcurrentlyContext(), jobMessages(3), decisions))
	require.Empty(t, r.sent)
}
