package demo

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
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
// VOLUME_FILE_INDEX=none drops the (bucket, object_path) index first: the chat schema before
// this branch, where every batch's shared-object check read the whole table.
func BenchmarkVolumeFileGC(b *testing.B) {
	ctx := context.Background()
	n := envSize(b, "VOLUME_FILES", 10_000)
	workers := testenv.EnvInt(b, "VOLUME_S3_WORKERS", 16)
	s := testenv.NewSchema(b)
	s.ApplyChatSchema(b)
	require.NoError(b, ledger.Migrate(ctx, s.Pool))
	bk := testenv.NewBucket(b)
	index := "object"
	if os.Getenv("VOLUME_FILE_INDEX") == "none" {
		index = "none"
		_, err := s.Pool.Exec(ctx, `DROP INDEX file_metadata_object`)
		require.NoError(b, err)
	}
	require.NoError(b, SeedFileRows(ctx, s.Pool, bk.Name, n, 1024))
	t0 := time.Now()
	rate, err := PutObjects(ctx, bk.Client, bk.Name, FileCandidateID, n, 1024, workers)
	require.NoError(b, err)
	b.Logf("put %d objects of 1 KiB in %s: %.0f objects/s with %d workers (%s)", n, time.Since(t0).Round(time.Millisecond), rate, workers, loadAvg())
	h, err := handlers.NewFileGC(s.Pool, bk.Client, handlers.FileGCConfig{}, time.Now, testenv.Logger(b))
	require.NoError(b, err)
	uncapped := int(n)
	for b.Loop() {
		m := startMeasure(b, "file_gc (3 shards in turn), index "+index, fmt.Sprintf("%d candidates + %d live", n, n), 24*time.Hour, s, "versitygw")
		var deleted, scanned int
		t0 := time.Now()
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
		took := time.Since(t0)
		m.stop(fmt.Sprintf("scanned %d, deleted %d objects", scanned, deleted))
		require.Equal(b, int(n), deleted)
		// What one node collects per hour: the figure to set max_deletes (per shard and run)
		// and the node count against the files the platform frees a day.
		b.ReportMetric(float64(deleted)/took.Hours(), "files/h")
		b.Logf("one node collected %d files in %s: %.0f files/hour", deleted, took.Round(time.Millisecond), float64(deleted)/took.Hours())
	}
}

// BenchmarkVolumeReports: daily_stats (daily) and group_activity (weekly) over a month of
// chat_messages (VOLUME_MESSAGES, default 1,000,000; production 20,000,000 across 50,000
// channels) and a month of audit_logs at VOLUME_AUDIT_PER_SEC calls per second (default 1,
// about 2.7 M rows; production 20, about 53 M), plus VOLUME_USERS users; then pg_partition
// (daily) on those tables. daily_stats runs first without the index on audit_logs(created_at)
// (the chat schema before this branch had none), then with the schema's BRIN index.
func BenchmarkVolumeReports(b *testing.B) {
	ctx := context.Background()
	v := ProductionVolume()
	v.Messages = envSize(b, "VOLUME_MESSAGES", 1_000_000)
	v.AuditPerSecond = envSize(b, "VOLUME_AUDIT_PER_SEC", 1)
	users := envSize(b, "VOLUME_USERS", 200_000)
	s := testenv.NewSchema(b)
	s.ApplyChatSchema(b)
	require.NoError(b, ledger.Migrate(ctx, s.Pool))
	// The first daily_stats run is the chat schema before this branch, without the audit index.
	_, err := s.Pool.Exec(ctx, `DROP INDEX audit_logs_created_at`)
	require.NoError(b, err)
	clock := MonthStart(time.Now()).AddDate(0, 1, 0).Add(-time.Hour)
	day := MonthStart(clock).AddDate(0, 0, 14) // the 15th, well inside both months of data
	t0 := time.Now()
	_, err = s.Pool.Exec(ctx, `INSERT INTO channels (id, name, kind) SELECT g, 'c' || g, CASE WHEN g % 10 = 0 THEN 1 ELSE 2 END
		FROM generate_series(1, $1::bigint) g`, v.Channels)
	require.NoError(b, err)
	require.NoError(b, SeedUsers(ctx, s.Pool, users))
	require.NoError(b, SeedMessageVolume(ctx, s.Pool, v, clock, 0))
	audit, err := SeedAuditVolume(ctx, s.Pool, v, clock)
	require.NoError(b, err)
	_, err = s.Pool.Exec(ctx, `ANALYZE audit_logs`)
	require.NoError(b, err)
	b.Logf("seeded %d channels, %d users, %d messages, %d audit rows in %s (%s)", v.Channels, users, v.Messages, audit,
		time.Since(t0).Round(time.Second), loadAvg())
	size := fmt.Sprintf("%d msgs, %d audit rows, %d users", v.Messages, audit, users)

	daily, err := handlers.NewDailyStats(s.Pool, handlers.DailyStatsConfig{}, time.Now, testenv.Logger(b))
	require.NoError(b, err)
	for _, index := range []string{"none", "brin"} {
		if index == "brin" {
			t := time.Now()
			_, err := s.Pool.Exec(ctx, `CREATE INDEX audit_logs_created_at ON audit_logs USING brin (created_at)`)
			require.NoError(b, err)
			b.Logf("BRIN index on audit_logs(created_at) built in %s", time.Since(t).Round(time.Millisecond))
		}
		b.Run("daily_stats/audit_index="+index, func(b *testing.B) {
			for b.Loop() {
				m := startMeasure(b, "daily_stats, audit_logs index "+index, size, 24*time.Hour, s)
				out, err := handlertest.Run(ctx, daily, handlertest.Job[handlers.DailyStatsArgs]{
					Args: handlers.DailyStatsArgs{Date: day.Format(time.DateOnly)}})
				require.NoError(b, err)
				res := out.(handlers.DailyStatsResult)
				m.stop(fmt.Sprintf("dau %d, messages %d, qps peak %d", res.DAU, res.Messages, res.APIQPSPeak))
			}
		})
	}

	group, err := handlers.NewGroupActivity(s.Pool, handlers.GroupActivityConfig{}, time.Now, testenv.Logger(b))
	require.NoError(b, err)
	b.Run("group_activity", func(b *testing.B) {
		for b.Loop() {
			m := startMeasure(b, "group_activity", size, 7*24*time.Hour, s)
			out, err := handlertest.Run(ctx, group, handlertest.Job[handlers.GroupActivityArgs]{
				Args: handlers.GroupActivityArgs{Week: handlers.ISOWeekLabel(day)}})
			require.NoError(b, err)
			res := out.(handlers.GroupActivityResult)
			m.stop(fmt.Sprintf("week %s, %d channels ranked", res.Week, res.Ranked))
		}
	})

	part, err := handlers.NewPartition(s.Pool, handlers.PartitionConfig{Tables: []string{"chat_messages", "audit_logs"}},
		func() time.Time { return clock }, testenv.Logger(b))
	require.NoError(b, err)
	b.Run("pg_partition", func(b *testing.B) {
		for b.Loop() {
			m := startMeasure(b, "pg_partition", size, 24*time.Hour, s)
			out, err := handlertest.Run(ctx, part, handlertest.Job[handlers.PartitionArgs]{})
			require.NoError(b, err)
			res := out.(handlers.PartitionResult)
			created := 0
			for _, t := range res.Tables {
				created += len(t.Created)
			}
			m.stop(fmt.Sprintf("%d partitions created", created))
		}
	})
}

// BenchmarkVolumeESForceMerge: es_forcemerge (daily) over VOLUME_ES_INDICES daily indices
// (default 2) of VOLUME_ES_DOCS chat messages each (default 50,000; a production day is about
// 670,000: 20 M messages a month), each written in VOLUME_ES_SEGMENTS refreshed batches
// (default 10) so it has that many segments to merge. In production one run merges the one
// day that just passed min_age_days; the others are already merged and skipped.
func BenchmarkVolumeESForceMerge(b *testing.B) {
	ctx := context.Background()
	indices := testenv.EnvInt(b, "VOLUME_ES_INDICES", 2)
	docs := testenv.EnvInt(b, "VOLUME_ES_DOCS", 50_000)
	segments := testenv.EnvInt(b, "VOLUME_ES_SEGMENTS", 10)
	es := testenv.NewES(b)
	t0 := time.Now()
	for i := range indices {
		name := fmt.Sprintf("%schat-messages-2026.11.%02d", es.Prefix, i+1)
		require.NoError(b, esDo(ctx, es.Client, esapi.IndicesCreateRequest{Index: name, Body: strings.NewReader(
			`{"settings":{"number_of_shards":1,"number_of_replicas":0,"refresh_interval":"-1"}}`)}))
		per := docs / segments
		for seg := range segments {
			for from := 0; from < per; from += 5000 {
				var bulk strings.Builder
				for j := from; j < min(from+5000, per); j++ {
					k := seg*per + j
					fmt.Fprintf(&bulk, "{\"index\":{}}\n{\"channel_id\":%d,\"seq\":%d,\"sender_id\":%d,\"body\":\"message %d of the day, about forty characters\",\"created_at\":\"2026-11-%02dT%02d:%02d:00Z\"}\n",
						k%50_000, k/50_000+1, (k*7919)%2_000_000, k, i+1, k%24, k%60)
				}
				require.NoError(b, esDo(ctx, es.Client, esapi.BulkRequest{Index: name, Body: strings.NewReader(bulk.String())}))
			}
			require.NoError(b, esDo(ctx, es.Client, esapi.IndicesRefreshRequest{Index: []string{name}}))
		}
	}
	b.Logf("seeded %d indices of %d docs (%d segments each) in %s (%s)", indices, docs, segments, time.Since(t0).Round(time.Second), loadAvg())
	zero := 0
	h, err := handlers.NewESForceMerge(es.Client, handlers.ESForceMergeConfig{Patterns: []string{es.Prefix + "chat-messages-*"},
		MinAgeDays: &zero, PollInterval: 200 * time.Millisecond}, time.Now, testenv.Logger(b))
	require.NoError(b, err)
	for _, name := range []string{"merge", "already_merged"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				m := startMeasure(b, "es_forcemerge "+name, fmt.Sprintf("%d indices x %d docs", indices, docs), 24*time.Hour, nil, "elasticsearch")
				out, err := handlertest.Run(ctx, h, handlertest.Job[handlers.ESForceMergeArgs]{})
				require.NoError(b, err)
				res := out.(handlers.ESForceMergeResult)
				m.stop(fmt.Sprintf("%d merged, %d skipped", len(res.Merged), len(res.Skipped)))
			}
		})
	}
}
