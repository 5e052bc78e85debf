package mq

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// resentProperty counts how many times a message was sent back by its consumer as a copy of
// its own (Producer.Resend) rather than by the broker's retry: the broker's count
// (ReconsumeTimes) starts again at 0 on the copy.
const resentProperty = "JOBSVC_RESENT"

// DLQTopic names a consumer group's dead-letter topic: %DLQ%<group>.
func DLQTopic(group string) string { return "%DLQ%" + group }

// Reconsumed is how many times m was handed to its group before: the broker's retries plus
// the copies its consumers resent (see Producer.Resend).
func Reconsumed(m *primitive.MessageExt) int {
	n := int(m.ReconsumeTimes)
	if v, err := strconv.Atoi(m.GetProperty(resentProperty)); err == nil && v > 0 {
		n += v
	}
	return n
}

// Resend sends a copy of m (same body, tag and keys) to topic, delivered at deliverAt (at
// once when zero or past), counting this send in the copy's Reconsumed. A batch consumer
// uses it for the one message of a batch that must come back while the others were
// consumed: the client can only answer for the batch as a whole.
func (p *Producer) Resend(ctx context.Context, m *primitive.MessageExt, topic string, deliverAt time.Time) (string, error) {
	msg := primitive.NewMessage(topic, m.Body)
	if tag := m.GetTags(); tag != "" {
		msg.WithTag(tag)
	}
	if keys := strings.Fields(m.GetKeys()); len(keys) > 0 {
		msg.WithKeys(keys)
	}
	msg.WithProperty(resentProperty, strconv.Itoa(Reconsumed(m)+1))
	if time.Until(deliverAt) > 0 {
		msg.WithDelayTimestamp(deliverAt)
	}
	rc, err := p.send(ctx, topic, msg)
	return rc.MsgID, err
}
