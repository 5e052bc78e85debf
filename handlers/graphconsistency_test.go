package handlers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j/config"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
)

func TestGraphConsistencyConfigRefusesBadKeys(t *testing.T) {
	t.Parallel()
	cases := map[string]GraphConsistencyConfig{
		"table:":             {Table: "users; DROP TABLE users"},
		"label:":             {Label: "User`) DETACH DELETE (n"},
		"id_property:":       {IDProperty: "id OR true"},
		"id_column:":         {IDColumn: `"id"`},
		"deleted_at_column:": {DeletedAtColumn: "deleted at"},
		"database:":          {Database: "a b"},
		"chunk_size:":        {ChunkSize: 5},
		"max_deviation:":     {MaxDeviation: ptr(1.5)},
	}
	for want, cfg := range cases {
		_, err := NewGraphConsistency(nil, nil, cfg, time.Now, testenv.Logger(t))
		require.ErrorContains(t, err, want)
	}
	h, err := NewGraphConsistency(nil, nil, GraphConsistencyConfig{MaxDeviation: ptr(0.0)}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	require.Equal(t, 0.0, *h.cfg.MaxDeviation, "an explicit 0 is kept: no tolerance")
	require.Error(t, (&GraphConsistencyArgs{MaxDeviation: ptr(-0.1)}).Validate())

	_, err = handlertest.Run(context.Background(), h, graphRun(GraphConsistencyArgs{}))
	require.True(t, job.IsDiscard(err), "no driver: retrying cannot help: %v", err)
	require.ErrorContains(t, err, "neo4j not configured")
}

func ptr[T any](v T) *T { return &v }

func graphRun(args GraphConsistencyArgs) handlertest.Job[GraphConsistencyArgs] {
	return handlertest.Job[GraphConsistencyArgs]{Args: args}
}

// seedUsers inserts live users ids, and soft-deleted users deleted (which the graph must not
// have and the check must not report).
func seedUsers(t *testing.T, s *testenv.Schema, ids, deleted []int64) {
	t.Helper()
	ctx := context.Background()
	_, err := s.Pool.Exec(ctx, `INSERT INTO users (id, username) SELECT id, 'u' || id FROM unnest($1::bigint[]) id`, ids)
	require.NoError(t, err)
	_, err = s.Pool.Exec(ctx, `INSERT INTO users (id, username, deleted_at) SELECT id, 'u' || id, now() FROM unnest($1::bigint[]) id`, deleted)
	require.NoError(t, err)
}

func seedNodes(t *testing.T, n *testenv.Neo4j, ids []int64, extra string) {
	t.Helper()
	ctx := context.Background()
	_, err := neo4j.ExecuteQuery(ctx, n.Driver, fmt.Sprintf("UNWIND $ids AS id CREATE (:`%s` {id: id})", n.Label),
		map[string]any{"ids": ids}, neo4j.EagerResultTransformer)
	require.NoError(t, err)
	if extra != "" {
		_, err = neo4j.ExecuteQuery(ctx, n.Driver, fmt.Sprintf(extra, n.Label), nil, neo4j.EagerResultTransformer)
		require.NoError(t, err)
	}
}

func idRange(from, to int64, except ...int64) []int64 {
	skip := map[int64]bool{}
	for _, e := range except {
		skip[e] = true
	}
	var out []int64
	for i := from; i <= to; i++ {
		if !skip[i] {
			out = append(out, i)
		}
	}
	return out
}

func TestGraphConsistencyFindsIDsMissingOnEachSide(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	n := testenv.NewNeo4j(t)
	seedUsers(t, s, idRange(1, 1000), []int64{2001, 2002, 2003})
	// The graph lacks 10, 500 and 1000, has 1500 and 3000000 that Postgres lacks, and one
	// node with a string id. The counts agree; the ids do not.
	seedNodes(t, n, append(idRange(1, 1000, 10, 500, 1000), 1500, 3000000), "CREATE (:`%s` {id: 'x'})")
	now := time.Date(2026, 11, 26, 5, 0, 0, 0, time.UTC)
	h, err := NewGraphConsistency(s.Pool, n.Driver, GraphConsistencyConfig{Label: n.Label, ChunkSize: 100},
		func() time.Time { return now }, testenv.Logger(t))
	require.NoError(t, err)
	ctx := context.Background()

	res, err := handlertest.Run(ctx, h, graphRun(GraphConsistencyArgs{}))
	require.Error(t, err)
	require.True(t, job.IsDiscard(err), "a deviation is the result, not a transient failure: %v", err)
	require.ErrorContains(t, err, "missing in graph 3 [10 500 1000], missing in postgres 2 [1500 3000000]")
	r := res.(GraphConsistencyResult)
	require.Equal(t, int64(1000), r.PGCount, "soft-deleted users are not counted")
	require.Equal(t, int64(1000), r.GraphCount)
	require.Equal(t, 0.0, r.Deviation)
	require.InDelta(t, 0.005, r.IDDeviation, 1e-12)
	require.True(t, r.IDsCompared)
	require.Equal(t, []int64{10, 500, 1000}, r.MissingInGraph)
	require.Equal(t, []int64{1500, 3000000}, r.MissingInPG)
	require.Equal(t, int64(3), r.MissingInGraphN)
	require.Equal(t, int64(2), r.MissingInPGN)
	require.Equal(t, int64(1), r.GraphNodesWithoutID)
	require.Empty(t, r.DuplicateInGraph)
	// Ten chunks of 100 Postgres ids plus the open one above them; four differ.
	require.Equal(t, 11, r.Chunks)
	require.Equal(t, 4, r.MismatchedChunks)
	require.Equal(t, now, r.CheckedAt)

	// A looser threshold passes with the same findings; samples are capped, counts are not.
	res, err = handlertest.Run(ctx, h, graphRun(GraphConsistencyArgs{MaxDeviation: ptr(0.01), MaxSamples: ptr(1)}))
	require.NoError(t, err)
	r = res.(GraphConsistencyResult)
	require.Equal(t, []int64{10}, r.MissingInGraph)
	require.Equal(t, []int64{1500}, r.MissingInPG)
	require.Equal(t, int64(3), r.MissingInGraphN)
	require.Equal(t, int64(2), r.MissingInPGN)

	// Counting alone sees nothing wrong: that is why ids are compared.
	res, err = handlertest.Run(ctx, h, graphRun(GraphConsistencyArgs{CountOnly: true}))
	require.NoError(t, err)
	r = res.(GraphConsistencyResult)
	require.False(t, r.IDsCompared)
	require.Empty(t, r.MissingInGraph)
}

func TestGraphConsistencyCountDeviationThreshold(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	n := testenv.NewNeo4j(t)
	seedUsers(t, s, idRange(1, 1000), nil)
	// Two users missing and one user held by two nodes.
	seedNodes(t, n, append(idRange(1, 1000, 7, 8), 9), "")
	h, err := NewGraphConsistency(s.Pool, n.Driver, GraphConsistencyConfig{Label: n.Label, ChunkSize: 300}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	ctx := context.Background()

	// 999 nodes for 1000 users: deviation 0.001 is not above 0.001; the ids are (0.002).
	res, err := handlertest.Run(ctx, h, graphRun(GraphConsistencyArgs{CountOnly: true}))
	require.NoError(t, err)
	r := res.(GraphConsistencyResult)
	require.Equal(t, int64(1000), r.PGCount)
	require.Equal(t, int64(999), r.GraphCount)
	require.InDelta(t, 0.001, r.Deviation, 1e-12)

	res, err = handlertest.Run(ctx, h, graphRun(GraphConsistencyArgs{}))
	require.True(t, job.IsDiscard(err), "%v", err)
	r = res.(GraphConsistencyResult)
	require.Equal(t, []int64{7, 8}, r.MissingInGraph)
	require.Empty(t, r.MissingInPG)
	require.Equal(t, []int64{9}, r.DuplicateInGraph)
	require.InDelta(t, 0.002, r.IDDeviation, 1e-12)

	// Zero tolerance fails even the count.
	_, err = handlertest.Run(ctx, h, graphRun(GraphConsistencyArgs{CountOnly: true, MaxDeviation: ptr(0.0)}))
	require.True(t, job.IsDiscard(err), "%v", err)
	require.ErrorContains(t, err, "1000 users in postgres")
}

func TestGraphConsistencyEmptyAndDeletedOnly(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	n := testenv.NewNeo4j(t)
	h, err := NewGraphConsistency(s.Pool, n.Driver, GraphConsistencyConfig{Label: n.Label}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	ctx := context.Background()
	res, err := handlertest.Run(ctx, h, graphRun(GraphConsistencyArgs{}))
	require.NoError(t, err)
	r := res.(GraphConsistencyResult)
	require.Zero(t, r.PGCount)
	require.Zero(t, r.GraphCount)
	require.Equal(t, 1, r.Chunks)

	// Deleted users kept in the graph are reported unless include_deleted says they belong.
	seedUsers(t, s, nil, []int64{5})
	seedNodes(t, n, []int64{5}, "")
	_, err = handlertest.Run(ctx, h, graphRun(GraphConsistencyArgs{}))
	require.ErrorContains(t, err, "missing in postgres 1 [5]")
	all, err := NewGraphConsistency(s.Pool, n.Driver, GraphConsistencyConfig{Label: n.Label, IncludeDeleted: true}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	_, err = handlertest.Run(ctx, all, graphRun(GraphConsistencyArgs{}))
	require.NoError(t, err)
}

func TestGraphConsistencyNeo4jDown(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	down, err := neo4j.NewDriverWithContext("bolt://127.0.0.1:1", neo4j.NoAuth(), func(c *config.Config) {
		c.MaxTransactionRetryTime = 500 * time.Millisecond
	})
	require.NoError(t, err)
	defer down.Close(context.Background())
	h, err := NewGraphConsistency(s.Pool, down, GraphConsistencyConfig{}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = handlertest.Run(ctx, h, graphRun(GraphConsistencyArgs{}))
	require.Error(t, err)
	require.False(t, job.IsDiscard(err), "a server that is down may be up on the next attempt")
	require.ErrorContains(t, err, "count :User in neo4j")
}
