package handlers

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/job"
)

// mustRun builds the run a handler of kind would receive for j (decoded and validated).
func mustRun[T any](t testing.TB, kind string, j handlertest.Job[T]) *job.Run[T] {
	t.Helper()
	run, err := handlertest.Build(kind, j)
	require.NoError(t, err)
	return run
}
