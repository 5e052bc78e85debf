package handlertest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/job"
)

type echoArgs struct {
	N int `json:"n"`
}

func (a *echoArgs) Validate() error {
	if a.N < 0 {
		return errors.New("n is negative")
	}
	return nil
}

type echo struct{ got *job.Run[echoArgs] }

func (echo) Kind() string { return "echo" }
func (e echo) Run(_ context.Context, run *job.Run[echoArgs]) (any, error) {
	*e.got = *run
	return run.Args.N * 2, nil
}

func TestRunGoesThroughDecodeAndValidate(t *testing.T) {
	t.Parallel()
	var got job.Run[echoArgs]
	h := echo{got: &got}
	res, err := handlertest.Run(context.Background(), h, handlertest.Job[echoArgs]{Args: echoArgs{N: 21}, Shard: job.Shard{Index: 1, Total: 3}})
	require.NoError(t, err)
	require.Equal(t, 42, res)
	require.Equal(t, "echo", got.Job)
	require.Equal(t, 1, got.Attempt)
	require.Equal(t, job.Shard{Index: 1, Total: 3}, got.Shard)
	require.WithinDuration(t, time.Now(), got.ScheduledAt, time.Minute)

	got = job.Run[echoArgs]{}
	_, err = handlertest.Run(context.Background(), h, handlertest.Job[echoArgs]{Args: echoArgs{N: -1}})
	require.True(t, job.IsReject(err))
	require.ErrorContains(t, err, "params: n is negative")
	require.Empty(t, got.Job, "a rejected message never reaches the handler")

	_, err = handlertest.Run(context.Background(), h, handlertest.Job[echoArgs]{Params: []byte(`{"m": 1}`)})
	require.ErrorContains(t, err, `unknown field "m"`)
}
