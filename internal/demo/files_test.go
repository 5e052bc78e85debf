package demo

import (
	"context"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
)

func TestSeedFilesIsIdempotent(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	b := testenv.NewBucket(t)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		require.NoError(t, SeedFiles(ctx, s.Pool, b.Client, b.Name))
	}
	var total, collectable int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 2 AND ref_count = 0
		AND updated_at < now() - interval '24 hours') FROM file_metadata`).Scan(&total, &collectable))
	require.Equal(t, len(demoFiles), total)
	require.Equal(t, 9, collectable)
	require.Equal(t, len(demoFiles)-1, b.Count(t), "every file but the one whose object is gone")
	// A missing bucket is made.
	other := "t-" + testenv.Suffix()
	t.Cleanup(func() {
		for e := range b.Client.RemoveObjects(ctx, other, b.Client.ListObjects(ctx, other, minio.ListObjectsOptions{Recursive: true}),
			minio.RemoveObjectsOptions{}) {
			t.Logf("empty %s: %v", other, e.Err)
		}
		require.NoError(t, b.Client.RemoveBucket(ctx, other))
	})
	require.NoError(t, SeedFiles(ctx, s.Pool, b.Client, other))
}
