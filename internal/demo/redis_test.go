package demo

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
)

func TestSeedRedisIsRepeatableAndGivesTheJobWork(t *testing.T) {
	r := testenv.NewRedis(t)
	ctx := context.Background()
	prefix := r.Prefix + BlacklistPrefix
	now := time.Now()
	h, err := handlers.NewTokenBlacklist(r.Client, handlers.TokenBlacklistConfig{Prefix: prefix}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	for range 2 {
		require.NoError(t, SeedRedisPrefix(ctx, r.Client, prefix, now))
		require.Len(t, r.Keys(t, prefix+"*"), 12)
		res, err := h.Run(ctx, &job.Run[handlers.TokenBlacklistArgs]{Envelope: job.Envelope{Job: handlers.TokenBlacklistKind}})
		require.NoError(t, err)
		got := res.(handlers.TokenBlacklistResult)
		require.GreaterOrEqual(t, got.WithTTL, int64(6)) // SCAN may repeat a key on a shared, rehashing server
		require.Equal(t, handlers.Fixed{Total: 6, FromExp: 3, ExpPassed: 1, MaxLifetime: 3}, got.Fixed)
	}
}
