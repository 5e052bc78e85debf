package consume

import (
	"context"
	"strings"
	"time"

	rmqconsumer "github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/chatplat/job-service/consumer"
	"github.com/chatplat/job-service/mq"
)

// maxReconsume bounds how often a message may come back before it goes to the group's
// dead-letter queue. The ledger sends a run's message there itself when the job's attempts
// run out; this only bounds messages that keep failing before a claim (a database that stays
// down). The broker applies it to its own retries, settle to the copies it resends.
const maxReconsume = 16

// dlqPrefix starts the topic of a message an operator resends from a dead-letter queue.
const dlqPrefix = "%DLQ%"

// resendTimeout bounds the sends of one batch's settling.
const resendTimeout = 10 * time.Second

// settle turns the decisions about a batch into the client's one result for the batch. The
// Go client has no per-message acknowledgement in a batch (ConsumeRetryLater sends every
// message of the batch back, at one delay level), so:
//   - every message done: consumed;
//   - every message going back the same way (one delay level, or all to the dead-letter
//     queue): the batch goes back, exactly as each would alone;
//   - otherwise each message that must come back is resent on its own (a copy, delayed by
//     its decision, or to the dead-letter queue) and the batch is consumed: the runs that
//     were done are not redelivered. Should a resend fail, the batch goes back whole at the
//     shortest delay asked; the messages that were done then come back to a ledger that
//     acknowledges them as duplicates.
func (c *Consumer) settle(concCtx *primitive.ConsumeConcurrentlyContext, msgs []*primitive.MessageExt,
	decisions []consumer.Decision) rmqconsumer.ConsumeResult {
	var back []int
	for i, d := range decisions {
		if d.Action != consumer.Ack {
			back = append(back, i)
		}
	}
	if len(back) == 0 {
		return rmqconsumer.ConsumeSuccess
	}
	level := func(d consumer.Decision) int {
		if d.Action == consumer.DeadLetter {
			return -1 // straight to %DLQ%<group>
		}
		return mq.DelayLevelFor(d.After)
	}
	first := level(decisions[back[0]])
	same := len(back) == len(msgs)
	for _, i := range back[1:] {
		same = same && level(decisions[i]) == first
	}
	if !same && c.resendEach(msgs, decisions, back) {
		return rmqconsumer.ConsumeSuccess
	}
	lvl := first
	for _, i := range back {
		if l := level(decisions[i]); lvl < 0 || (l > 0 && l < lvl) {
			lvl = l
		}
	}
	if lvl < 0 && len(back) < len(msgs) {
		// Never send the batch's done messages to the dead-letter queue: they come back once
		// more and are acknowledged as duplicates; the failed run stays failed in the ledger.
		lvl = 1
	}
	if concCtx != nil {
		concCtx.DelayLevelWhenNextConsume = lvl
	}
	return rmqconsumer.ConsumeRetryLater
}

// resendEach sends the messages back[i] of msgs back on their own and reports whether every
// one went.
func (c *Consumer) resendEach(msgs []*primitive.MessageExt, decisions []consumer.Decision, back []int) bool {
	if c.opts.Resend == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(c.baseCtx, resendTimeout)
	defer cancel()
	for _, i := range back {
		m, d := msgs[i], decisions[i]
		if strings.HasPrefix(m.Topic, dlqPrefix) {
			// An operator's resend from the dead-letter queue: a copy on the job topic would
			// no longer say so. Rare enough to send the batch back whole.
			return false
		}
		topic, at := m.Topic, c.opts.Now().Add(d.After)
		if d.Action == consumer.DeadLetter || mq.Reconsumed(m) >= maxReconsume {
			topic, at = mq.DLQTopic(c.opts.Group), time.Time{}
		}
		if _, err := c.opts.Resend.Resend(ctx, m, topic, at); err != nil {
			c.log.Warn("could not send one message of a batch back on its own; the whole batch comes back",
				"msg_id", m.MsgId, "topic", topic, "err", err)
			return false
		}
	}
	return true
}
