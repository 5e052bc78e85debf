package demo

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
)

// TestVolumeSeedersMakeWhatTheBenchmarksCheck runs the per-job seeders at a small size and
// checks the shapes the benchmarks rely on: soft-deleted users without nodes, leaked tokens
// without a TTL, candidates interleaved with live files, and a batched node delete that
// leaves nothing behind.
func TestVolumeSeedersMakeWhatTheBenchmarksCheck(t *testing.T) {
	ctx := context.Background()
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	require.NoError(t, SeedUsers(ctx, s.Pool, 2500))
	var live, deleted int64
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE deleted_at IS NULL), count(*) FILTER (WHERE deleted_at IS NOT NULL) FROM users`).
		Scan(&live, &deleted))
	require.Equal(t, []int64{2498, 2}, []int64{live, deleted})

	g := testenv.NewNeo4j(t)
	missing, err := SeedUserNodes(ctx, g.Driver, g.Label, 2500, 1000)
	require.NoError(t, err)
	require.Zero(t, missing)
	count := func() int64 {
		out, err := neo4j.ExecuteQuery(ctx, g.Driver, fmt.Sprintf("MATCH (n:`%s`) RETURN count(n)", g.Label), nil, neo4j.EagerResultTransformer)
		require.NoError(t, err)
		return out.Records[0].Values[0].(int64)
	}
	require.Equal(t, int64(2498), count())
	require.NoError(t, DeleteUserNodes(ctx, g.Driver, g.Label, 1000))
	require.Zero(t, count())

	r := testenv.NewRedis(t)
	leaked, err := SeedTokens(ctx, r.Client, r.Prefix, 1000, 300, time.Now())
	require.NoError(t, err)
	require.Equal(t, 10, leaked)
	noTTL := 0
	for _, k := range r.Keys(t, r.Prefix+"*") {
		if r.Client.TTL(ctx, k).Val() == -1 {
			noTTL++
		}
	}
	require.Equal(t, 10, noTTL)

	require.NoError(t, SeedFileRows(ctx, s.Pool, "b", 100, 10))
	var cands, others int64
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 2 AND ref_count = 0), count(*) FILTER (WHERE status = 1) FROM file_metadata`).
		Scan(&cands, &others))
	require.Equal(t, []int64{100, 100}, []int64{cands, others})
	var path string
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT object_path FROM file_metadata WHERE id = $1 AND status = 2`, FileCandidateID(99)).Scan(&path))
	require.Equal(t, "f/200", path)
}
