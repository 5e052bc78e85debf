package filegc

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// DeferredSuffix makes the tag of the timer messages the GC publishes to itself: events not
// yet due travel together in one message per due window, tagged <tag>_DEFERRED. One timer
// message per batch rather than per event keeps the broker's timer wheel, the slowest part of
// the path, out of the way: it re-puts due messages at a few hundred per second.
const DeferredSuffix = "_DEFERRED"

// Bounds of one deferred message.
const (
	deferWindow    = time.Second // events due within this share a message, delivered at the latest due
	maxDeferEvents = 256
)

type deferred struct {
	due  time.Time
	body []byte
}

// deferredBody is the JSON of a deferred message: the original event bodies, untouched, so
// they are validated again when they come back.
type deferredBody struct {
	Events []json.RawMessage `json:"events"`
}

func (p *Processor) deferredTag() string { return p.cfg.Tag + DeferredSuffix }

func decodeDeferred(body []byte) ([][]byte, error) {
	var d deferredBody
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("deferred events: %w", err)
	}
	if len(d.Events) == 0 {
		return nil, fmt.Errorf("deferred events: none")
	}
	out := make([][]byte, len(d.Events))
	for i, e := range d.Events {
		out[i] = e
	}
	return out, nil
}

// deferAll publishes the events not yet due as timer messages, grouped by due window, each
// delivered at the latest due time of its group so no event comes back before its grace.
func (p *Processor) deferAll(ctx context.Context, later []deferred) error {
	if len(later) == 0 {
		return nil
	}
	sort.Slice(later, func(i, j int) bool { return later[i].due.Before(later[j].due) })
	for start := 0; start < len(later); {
		end := start + 1
		for end < len(later) && end-start < maxDeferEvents && later[end].due.Sub(later[start].due) <= deferWindow {
			end++
		}
		group := deferredBody{Events: make([]json.RawMessage, 0, end-start)}
		for _, d := range later[start:end] {
			group.Events = append(group.Events, d.body)
		}
		body, err := json.Marshal(group)
		if err != nil {
			return fmt.Errorf("encode deferred events: %w", err)
		}
		if _, err := p.pub.PublishRaw(ctx, p.cfg.Topic, p.deferredTag(), nil, body, later[end-1].due); err != nil {
			return fmt.Errorf("defer %d events: %w", end-start, err)
		}
		start = end
	}
	return nil
}
