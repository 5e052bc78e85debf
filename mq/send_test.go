package mq

import (
	"context"
	"errors"
	"testing"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/stretchr/testify/require"
)

// routeLessProducer fails its first sends the way the client does when a send races its own
// route lookup, then sends.
type routeLessProducer struct {
	rocketmq.Producer
	failures, calls int
	err             error
}

func (f *routeLessProducer) SendSync(_ context.Context, msgs ...*primitive.Message) (*primitive.SendResult, error) {
	f.calls++
	if f.calls <= f.failures {
		return nil, f.err
	}
	return &primitive.SendResult{Status: primitive.SendOK, MsgID: "m1"}, nil
}

// A send refused for want of a route is tried again: it is the client racing its own route
// lookup, and the next try finds the broker. Other errors are not retried here (the client
// retries sends itself), and a route that stays missing still fails.
func TestSendRetriesARouteNotFoundYet(t *testing.T) {
	t.Parallel()
	routeErr := errors.New("topic=F_x route info not found")
	f := &routeLessProducer{failures: 2, err: routeErr}
	rc, err := (&Producer{p: f}).send(context.Background(), "F_x", primitive.NewMessage("F_x", []byte("{}")))
	require.NoError(t, err)
	require.Equal(t, "m1", rc.MsgID)
	require.Equal(t, 3, f.calls)

	f = &routeLessProducer{failures: 100, err: routeErr}
	_, err = (&Producer{p: f}).send(context.Background(), "F_x", primitive.NewMessage("F_x", []byte("{}")))
	require.ErrorIs(t, err, routeErr)
	require.Equal(t, 1+routeRetries, f.calls)

	f = &routeLessProducer{failures: 1, err: errors.New("send timeout")}
	_, err = (&Producer{p: f}).send(context.Background(), "F_x", primitive.NewMessage("F_x", []byte("{}")))
	require.Error(t, err)
	require.Equal(t, 1, f.calls)
}
