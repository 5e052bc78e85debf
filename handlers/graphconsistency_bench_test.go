package handlers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/testenv"
)

// BenchmarkGraphConsistency100k checks 100,000 users against about as many nodes (an index on
// the id) and reports the time of one full run and the ids checked per second. "clustered":
// the differences fall in two chunks, so the other eight compare fingerprints only. "spread":
// every chunk differs and is read id by id, the worst case.
func BenchmarkGraphConsistency100k(b *testing.B) {
	b.Run("clustered", func(b *testing.B) {
		// Graph lacks 50001..50010; it has 100001..100009, which Postgres lacks.
		benchGraph(b, "true", "NOT (id >= 50001 AND id <= 50010)", 10, 9)
	})
	b.Run("spread", func(b *testing.B) {
		// Graph lacks the multiples of 9973; Postgres lacks those of 10007.
		benchGraph(b, "g % 10007 <> 0", "id % 9973 <> 0 AND id <= 100000", 10, 9)
	})
}

// benchGraph seeds users 1..100000 where pgWhere (on g) holds and nodes for 1..100009 where
// graphWhere (on id) holds.
func benchGraph(b *testing.B, pgWhere, graphWhere string, missingInGraph, missingInPG int64) {
	const users = 100_000
	s := testenv.NewSchema(b)
	s.ApplyChatSchema(b)
	n := testenv.NewNeo4j(b)
	ctx := context.Background()
	_, err := s.Pool.Exec(ctx, `INSERT INTO users (id, username) SELECT g, 'u' || g FROM generate_series(1, $1::bigint) g
		WHERE `+pgWhere, users)
	require.NoError(b, err)
	_, err = neo4j.ExecuteQuery(ctx, n.Driver, fmt.Sprintf("CREATE INDEX %s_id FOR (u:`%s`) ON (u.id)", n.Label, n.Label), nil, neo4j.EagerResultTransformer)
	require.NoError(b, err)
	for lo := int64(1); lo <= users+9; lo += 20000 {
		_, err = neo4j.ExecuteQuery(ctx, n.Driver, fmt.Sprintf(
			"UNWIND range($lo, $hi) AS id WITH id WHERE %s CREATE (:`%s` {id: id})", graphWhere, n.Label),
			map[string]any{"lo": lo, "hi": min(lo+19999, users+9)}, neo4j.EagerResultTransformer)
		require.NoError(b, err)
	}
	_, err = neo4j.ExecuteQuery(ctx, n.Driver, "CALL db.awaitIndexes(120)", nil, neo4j.EagerResultTransformer)
	require.NoError(b, err)
	h, err := NewGraphConsistency(s.Pool, n.Driver, GraphConsistencyConfig{Label: n.Label, MaxDeviation: ptr(0.01)}, time.Now, testenv.Logger(b))
	require.NoError(b, err)
	b.ResetTimer()
	var r GraphConsistencyResult
	for i := 0; i < b.N; i++ {
		res, err := handlertest.Run(ctx, h, graphRun(GraphConsistencyArgs{}))
		require.NoError(b, err)
		r = res.(GraphConsistencyResult)
	}
	b.StopTimer()
	require.Equal(b, missingInGraph, r.MissingInGraphN)
	require.Equal(b, missingInPG, r.MissingInPGN)
	require.True(b, r.GraphIDIndexed)
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/run")
	b.ReportMetric(float64(users*b.N)/b.Elapsed().Seconds(), "ids/s")
	b.Logf("chunks %d, mismatched %d, missing_in_graph %v, missing_in_pg %v", r.Chunks, r.MismatchedChunks, r.MissingInGraph, r.MissingInPG)
}
