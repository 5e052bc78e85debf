package handlers

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/archive"
	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
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

// TestPartitionArchiveDefaultsAndFirstRun: with the defaults a new deployment's first run only
// previews (what would be archived and dropped, with sizes) and the next one archives the
// audit log's old months; chat history is never touched without a configured hot period.
func TestPartitionArchiveDefaultsAndFirstRun(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	ctx := context.Background()
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	b := testenv.NewBucket(t)
	for _, sql := range []string{
		`CREATE TABLE audit_logs_2026_02 PARTITION OF audit_logs FOR VALUES FROM ('2026-02-01T00:00:00Z') TO ('2026-03-01T00:00:00Z')`,
		`INSERT INTO audit_logs (user_id, action, created_at) SELECT g, 'GET /x', '2026-02-02T00:00:00Z' FROM generate_series(1, 500) g`,
		`CREATE TABLE chat_messages_2024_01 PARTITION OF chat_messages FOR VALUES FROM ('2024-01-01T00:00:00Z') TO ('2024-02-01T00:00:00Z')`,
		`INSERT INTO chat_messages (id, channel_id, seq, sender_id, created_at) VALUES (1, 1, 1, 1, '2024-01-02T00:00:00Z')`,
	} {
		_, err := s.Pool.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	now := func() time.Time { return time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC) }
	h, err := NewPartitionArchive(s.Pool, b.Client, PartitionArchiveConfig{Bucket: b.Name}, now, testenv.Logger(t))
	require.NoError(t, err)
	there := func(name string) bool {
		var ok bool
		require.NoError(t, s.Pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok))
		return ok
	}

	out, err := handlertest.Run(ctx, h, handlertest.Job[PartitionArchiveArgs]{})
	require.NoError(t, err)
	res := out.(archive.Result)
	require.True(t, res.DryRun, "the first run of a new deployment previews")
	require.True(t, res.FirstRun)
	require.True(t, res.Drop)
	require.Len(t, res.Items, 1, "%+v", res.Items)
	require.Equal(t, "would_archive", res.Items[0].Action)
	require.Equal(t, "audit_logs_2026_02", res.Items[0].Partition)
	require.Positive(t, res.Items[0].DiskBytes)
	require.True(t, there("audit_logs_2026_02"))

	out, err = handlertest.Run(ctx, h, handlertest.Job[PartitionArchiveArgs]{})
	require.NoError(t, err)
	res = out.(archive.Result)
	require.False(t, res.DryRun)
	require.False(t, res.FirstRun)
	require.Len(t, res.Items, 1, "%+v", res.Items)
	require.Equal(t, "archived", res.Items[0].Action)
	require.False(t, there("audit_logs_2026_02"))
	require.True(t, there("chat_messages_2024_01"), "chat history stays without a configured hot period")
}
