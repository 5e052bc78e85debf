package demo

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// The per-job volume benchmarks (issue 14 item 3). Each seeds its own data (a fresh schema,
// key prefix, Neo4j label, bucket or index prefix, removed at the end), runs the job through
// handlertest.Run (registry, decode, validate, run: the consumer's path) and logs a "ROW"
// line for BENCHMARKS.md. Sizes come from env; the defaults are small enough to iterate on
// the shared machine, BENCHMARKS.md gives the production values.

// BenchmarkVolumeTokenBlacklist: token_blacklist (hourly) over VOLUME_TOKENS blacklist keys
// (default 100,000; production 1,000,000), 1% of them without a TTL. The first run repairs
// them, the second is the steady state (nothing to fix).
func BenchmarkVolumeTokenBlacklist(b *testing.B) {
	ctx := context.Background()
	n := envSize(b, "VOLUME_TOKENS", 100_000)
	r := testenv.NewRedis(b)
	t0 := time.Now()
	leaked, err := SeedTokens(ctx, r.Client, r.Prefix, int(n), 1000, time.Now())
	require.NoError(b, err)
	b.Logf("seeded %d tokens (%d without TTL) in %s", n, leaked, time.Since(t0).Round(time.Millisecond))
	h, err := handlers.NewTokenBlacklist(r.Client, handlers.TokenBlacklistConfig{Prefix: r.Prefix}, time.Now, testenv.Logger(b))
	require.NoError(b, err)
	for _, name := range []string{"repair", "steady"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				m := startMeasure(b, "token_blacklist "+name, fmt.Sprintf("%d keys", n), time.Hour, nil, "redis-server")
				out, err := handlertest.Run(ctx, h, handlertest.Job[handlers.TokenBlacklistArgs]{})
				require.NoError(b, err)
				res := out.(handlers.TokenBlacklistResult)
				m.stop(fmt.Sprintf("scanned %d, fixed %d", res.Scanned, res.Fixed.Total))
				if name == "repair" {
					require.Equal(b, int64(leaked), res.Fixed.Total)
				} else {
					require.Zero(b, res.Fixed.Total)
				}
			}
		})
	}
}

// BenchmarkVolumeGraph: graph_consistency (daily) over VOLUME_USERS users in Postgres
// (default 200,000; production 2,000,000) and the same users as nodes in Neo4j (indexed id),
// less every 1000th (soft-deleted) and a few truly missing ones the check must find.
func BenchmarkVolumeGraph(b *testing.B) {
	ctx := context.Background()
	n := envSize(b, "VOLUME_USERS", 200_000)
	s := testenv.NewSchema(b)
	s.ApplyChatSchema(b)
	g := testenv.NewNeo4j(b)
	// Runs before testenv's own cleanup (LIFO), which deletes the label in one transaction.
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if err := DeleteUserNodes(ctx, g.Driver, g.Label, 20_000); err != nil {
			b.Logf("delete nodes: %v", err)
		}
	})
	t0 := time.Now()
	require.NoError(b, SeedUsers(ctx, s.Pool, n))
	b.Logf("seeded %d users in postgres in %s", n, time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	missing, err := SeedUserNodes(ctx, g.Driver, g.Label, n, 50_000)
	require.NoError(b, err)
	b.Logf("seeded their nodes in neo4j in %s (%d missing)", time.Since(t0).Round(time.Millisecond), missing)
	h, err := handlers.NewGraphConsistency(s.Pool, g.Driver, handlers.GraphConsistencyConfig{Label: g.Label}, time.Now, testenv.Logger(b))
	require.NoError(b, err)
	for b.Loop() {
		m := startMeasure(b, "graph_consistency", fmt.Sprintf("%d users", n), 24*time.Hour, s, "neo4j")
		out, err := handlertest.Run(ctx, h, handlertest.Job[handlers.GraphConsistencyArgs]{})
		require.NoError(b, err)
		res := out.(handlers.GraphConsistencyResult)
		m.stop(fmt.Sprintf("%d chunks, %d mismatched, %d missing in graph", res.Chunks, res.MismatchedChunks, res.MissingInGraphN))
		require.Equal(b, missing, res.MissingInGraphN)
		require.Zero(b, res.MissingInPGN)
		require.True(b, res.GraphIDIndexed)
	}
}

// BenchmarkVolumeFileGC: file_gc (daily, 3 shards) over VOLUME_FILES candidates with their
// objects (default 10,000; production 1,000,000) among as many live files. The objects are
// put with VOLUME_S3_WORKERS concurrent PUTs (default 16); the rate is logged. The shards run
// one after the other here (in production on up to three nodes at once), each uncapped.
func BenchmarkVolumeFileGC(b *testing.B) {
	ctx := context.Background()
	n := envSize(b, "VOLUME_FILES", 10_000)
	workers := testenv.EnvInt(b, "VOLUME_S3_WORKERS", 16)
	s := testenv.NewSchema(b)
	s.ApplyChatSchema(b)
	require.NoError(b, ledger.Migrate(ctx, s.Pool))
	bk := testenv.NewBucket(b)
	require.NoError(b, SeedFileRows(ctx, s.Pool, bk.Name, n, 1024))
	t0 := time.Now()
	rate, err := PutObjects(ctx, bk.Client, bk.Name, FileCandidateID, n, 1024, workers)
	require.NoError(b, err)
	b.Logf("put %d objects of 1 KiB in %s: %.0f objects/s with %d workers (%s)", n, time.Since(t0).Round(time.Millisecond), rate, workers, loadAvg())
	h, err := handlers.NewFileGC(s.Pool, bk.Client, handlers.FileGCConfig{}, time.Now, testenv.Logger(b))
	require.NoError(b, err)
	uncapped := int(n)
	for b.Loop() {
		m := startMeasure(b, "file_gc (3 shards in turn)", fmt.Sprintf("%d candidates + %d live", n, n), 24*time.Hour, s, "versitygw")
		var deleted, scanned int
		for shard := range 3 {
			t := time.Now()
			out, err := handlertest.Run(ctx, h, handlertest.Job[handlers.FileGCArgs]{Args: handlers.FileGCArgs{MaxDeletes: &uncapped},
				Shard: job.Shard{Index: shard, Total: 3}})
			require.NoError(b, err)
			res := out.(handlers.FileGCResult)
			deleted += res.DeletedObjects
			scanned += res.Scanned
			b.Logf("shard %d/3: %s, scanned %d, deleted %d objects, missing %d", shard, time.Since(t).Round(time.Millisecond),
				res.Scanned, res.DeletedObjects, res.MissingObjects)
		}
		m.stop(fmt.Sprintf("scanned %d, deleted %d objects", scanned, deleted))
		require.Equal(b, int(n), deleted)
	}
}
