package handlers

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
)

// TestPartitionArchiveMovesInShardZeroOnly: a run split into shards (jobs.partition_archive.shards
// or `jobctl run --shards`) moves partitions in its first shard only; the others record that
// they did nothing, so two shards never work on one partition at once. Neither touches a
// server here: shard 0 stops at the missing S3 client, the others before it.
func TestPartitionArchiveMovesInShardZeroOnly(t *testing.T) {
	h, err := NewPartitionArchive(nil, nil, PartitionArchiveConfig{}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	ctx := context.Background()
	for i := 1; i < 3; i++ {
		out, err := handlertest.Run(ctx, h, handlertest.Job[PartitionArchiveArgs]{Shard: job.Shard{Index: i, Total: 3}})
		require.NoError(t, err)
		require.Contains(t, out.(PartitionArchiveSkipped).Skipped, "shard 0 only")
	}
	_, err = handlertest.Run(ctx, h, handlertest.Job[PartitionArchiveArgs]{Shard: job.Shard{Index: 0, Total: 3}})
	require.ErrorContains(t, err, "s3.endpoint", "shard 0 does the work")
}
