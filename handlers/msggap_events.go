package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// topicPattern is what a RocketMQ topic or tag name here may be.
var topicPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,127}$`)

// GapEventVersion is the version of the GapEvent JSON contract.
const GapEventVersion = 1

// Gap event kinds; each is published with its own tag (GapEventsConfig.Tags).
const (
	// GapKindSeq: messages seq From..To of a channel are missing, and the message after the
	// range committed longer than settle ago.
	GapKindSeq = "seq_gap"
)

// GapEvent is the JSON body of a repair event: one persistent gap, for the message service
// to re-drive the missing range (from its transactional outbox, or by re-sending). The
// contract is documented in README "The gap repair contract". Delivery is at least once: a
// gap seen by several runs (every 10 minutes until it is repaired) is published by each, so
// the consumer de-duplicates on Key.
type GapEvent struct {
	Version int    `json:"version"` // GapEventVersion
	Kind    string `json:"kind"`    // seq_gap
	// Key names the gap: "<table>:<channel>:<from>-<to>"; also the message key.
	Key       string `json:"key"`
	Table     string `json:"table"`
	ChannelID int64  `json:"channel_id"`
	// FromSeq..ToSeq (inclusive) are missing.
	FromSeq int64 `json:"from_seq"`
	ToSeq   int64 `json:"to_seq"`
	// SeenAt is when the message after the gap was created.
	SeenAt     time.Time `json:"seen_at"`
	DetectedAt time.Time `json:"detected_at"`
	Job        string    `json:"job"`
	RunKey     string    `json:"run_key"`
}

// GapEventsConfig is msg_gap_check's repair_events section. Off by default: the alert is
// what operators get until a consumer exists for the events.
type GapEventsConfig struct {
	// Enabled publishes a repair event for every gap found.
	Enabled bool `yaml:"enabled"`
	// Topic the events go to (RocketMQ, the job topic's name servers).
	Topic string `yaml:"topic"`
	// Tags maps each event kind to its message tag.
	Tags map[string]string `yaml:"tags"`
}

// WithDefaults fills unset fields.
func (c GapEventsConfig) WithDefaults() GapEventsConfig {
	if c.Topic == "" {
		c.Topic = "chat_msg_gap_repair"
	}
	tags := map[string]string{GapKindSeq: "seq_gap"}
	for k, v := range c.Tags {
		tags[k] = v
	}
	c.Tags = tags
	return c
}

// Validate names the first bad key.
func (c GapEventsConfig) Validate() error {
	if !topicPattern.MatchString(c.Topic) {
		return fmt.Errorf("topic: %q is not a RocketMQ topic name ([A-Za-z0-9_-], at most 127)", c.Topic)
	}
	for kind, tag := range c.Tags {
		if kind != GapKindSeq {
			return fmt.Errorf("tags.%s: unknown event kind (known: %s)", kind, GapKindSeq)
		}
		if !topicPattern.MatchString(tag) {
			return fmt.Errorf("tags.%s: %q is not a plain tag ([A-Za-z0-9_-])", kind, tag)
		}
	}
	return nil
}

// EventPublisher sends one message; mq.Producer is one.
type EventPublisher interface {
	PublishRaw(ctx context.Context, topic, tag string, keys []string, body []byte, deliverAt time.Time) (string, error)
}

// publishGaps publishes one event per gap the result lists. A failure fails the run with a
// plain (retried) error: the events must go out, and a retry finds the gaps again.
func (h *MsgGap) publishGaps(ctx context.Context, runKey string, res MsgGapResult) (int, error) {
	if !h.cfg.Events.Enabled || res.Gaps == 0 {
		return 0, nil
	}
	if h.pub == nil {
		return 0, errors.New("repair_events enabled but this node has no publisher")
	}
	n := 0
	for _, c := range res.Channels {
		for _, r := range c.Missing {
			ev := GapEvent{Version: GapEventVersion, Kind: GapKindSeq,
				Key:   fmt.Sprintf("%s:%d:%d-%d", h.cfg.Table, c.Channel, r.From, r.To),
				Table: h.cfg.Table, ChannelID: c.Channel, FromSeq: r.From, ToSeq: r.To, SeenAt: r.SeenAt.UTC(),
				DetectedAt: res.To, Job: MsgGapKind, RunKey: runKey}
			body, err := json.Marshal(ev)
			if err != nil {
				return n, fmt.Errorf("encode gap event %s: %w", ev.Key, err)
			}
			if _, err := h.pub.PublishRaw(ctx, h.cfg.Events.Topic, h.cfg.Events.Tags[GapKindSeq], []string{ev.Key}, body, time.Time{}); err != nil {
				return n, fmt.Errorf("publish gap event %s to %s: %w", ev.Key, h.cfg.Events.Topic, err)
			}
			n++
		}
	}
	return n, nil
}
