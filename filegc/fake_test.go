package filegc

import (
	"context"
	"time"
)

type sent struct {
	tag  string
	body []byte
	at   time.Time
}

type fakePub struct{ sent []sent }

func (f *fakePub) PublishRaw(_ context.Context, _, tag string, _ []string, body []byte, at time.Time) (string, error) {
	f.sent = append(f.sent, sent{tag: tag, body: body, at: at})
	return "id", nil
}
