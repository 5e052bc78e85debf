// Production-volume data for the per-job benchmarks other than msg_gap_check.

package demo

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/redis/go-redis/v9"

	"github.com/chatplat/job-service/sqlident"
)

// Shapes of the generated data, shared with the benchmarks that check the jobs' answers.
const (
	// DeletedUserEvery: every this many users is soft-deleted in Postgres and absent from the
	// graph, as the platform keeps it (the check must not report them).
	DeletedUserEvery = 1000
	// MissingNodeEvery: every this many live users has no node, a real (small) deviation the
	// check must find id by id: 20 at 2 million users, far below the 0.1% threshold.
	MissingNodeEvery = 100_003
	// LeakedTokenEvery: every this many blacklist keys has lost its TTL (the leak
	// token_blacklist repairs); the others carry one, as the auth service writes them.
	LeakedTokenEvery = 100
)

// SeedUsers inserts users 1..n into the users table of the pool's search_path, every
// DeletedUserEvery-th soft-deleted, set-based in batches.
func SeedUsers(ctx context.Context, pool *pgxpool.Pool, n int64) error {
	if err := RequireLocal(pool); err != nil {
		return err
	}
	for from := int64(1); from <= n; from += volumeBatch {
		to := min(from+volumeBatch-1, n)
		if _, err := pool.Exec(ctx, `INSERT INTO users (id, username, created_at, deleted_at)
			SELECT g, 'u' || g, '2024-01-01'::timestamptz + g * interval '30 s',
				CASE WHEN g % $3 = 0 THEN '2026-01-01'::timestamptz END
			FROM generate_series($1::bigint, $2::bigint) g`, from, to, DeletedUserEvery); err != nil {
			return fmt.Errorf("insert users %d..%d: %w", from, to, err)
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE users`); err != nil {
		return fmt.Errorf("analyze users: %w", err)
	}
	return nil
}

// SeedUserNodes creates a :label node {id} for each live user 1..n of SeedUsers except every
// MissingNodeEvery-th, in UNWIND batches of batch ids (one transaction each), after creating
// the index on label(id) the platform must have. It returns how many nodes are missing.
func SeedUserNodes(ctx context.Context, d neo4j.DriverWithContext, label string, n, batch int64) (int64, error) {
	if !sqlident.Plain(label) {
		return 0, fmt.Errorf("label %q is not a plain identifier", label)
	}
	if _, err := neo4j.ExecuteQuery(ctx, d, fmt.Sprintf("CREATE INDEX `%s_id` IF NOT EXISTS FOR (u:`%s`) ON (u.id)", label, label),
		nil, neo4j.EagerResultTransformer); err != nil {
		return 0, fmt.Errorf("create index on :%s(id): %w", label, err)
	}
	q := fmt.Sprintf("UNWIND range($lo, $hi) AS id WITH id WHERE id %% $del <> 0 AND id %% $miss <> 0 CREATE (:`%s` {id: id})", label)
	for lo := int64(1); lo <= n; lo += batch {
		hi := min(lo+batch-1, n)
		if _, err := neo4j.ExecuteQuery(ctx, d, q, map[string]any{"lo": lo, "hi": hi, "del": int64(DeletedUserEvery),
			"miss": int64(MissingNodeEvery)}, neo4j.EagerResultTransformer); err != nil {
			return 0, fmt.Errorf("create :%s nodes %d..%d: %w", label, lo, hi, err)
		}
	}
	if _, err := neo4j.ExecuteQuery(ctx, d, "CALL db.awaitIndexes(600)", nil, neo4j.EagerResultTransformer); err != nil {
		return 0, fmt.Errorf("await neo4j indexes: %w", err)
	}
	missing := int64(0)
	for id := int64(MissingNodeEvery); id <= n; id += MissingNodeEvery {
		if id%DeletedUserEvery != 0 {
			missing++
		}
	}
	return missing, nil
}

// DeleteUserNodes removes every :label node in transactions of batch nodes: one DETACH
// DELETE of millions of nodes would need them all in one transaction's memory.
func DeleteUserNodes(ctx context.Context, d neo4j.DriverWithContext, label string, batch int64) error {
	if !sqlident.Plain(label) {
		return fmt.Errorf("label %q is not a plain identifier", label)
	}
	for {
		out, err := neo4j.ExecuteQuery(ctx, d, fmt.Sprintf("MATCH (n:`%s`) WITH n LIMIT $batch DETACH DELETE n RETURN count(*)", label),
			map[string]any{"batch": batch}, neo4j.EagerResultTransformer)
		if err != nil {
			return fmt.Errorf("delete :%s nodes: %w", label, err)
		}
		if n, _ := out.Records[0].Values[0].(int64); n == 0 {
			return nil
		}
	}
}

// SeedTokens writes n blacklist keys prefix+<jti> whose value is the token's claims JSON with
// an exp within the next 7 days, pipelined by batch. Every LeakedTokenEvery-th key has no
// TTL; the others expire with their token, as the auth service writes them. It returns the
// number of leaked keys.
func SeedTokens(ctx context.Context, rdb *redis.Client, prefix string, n, batch int, now time.Time) (int, error) {
	leaked := 0
	for from := 0; from < n; from += batch {
		pipe := rdb.Pipeline()
		for i := from; i < min(from+batch, n); i++ {
			ttl := time.Duration(i%(7*24*60)+1) * time.Minute
			val := fmt.Sprintf(`{"sub":"%d","exp":%d}`, i%2_000_000+1, now.Add(ttl).Unix())
			key := fmt.Sprintf("%s%016x", prefix, uint64(i)*0x9E3779B97F4A7C15)
			if i%LeakedTokenEvery == 0 {
				pipe.Set(ctx, key, val, 0)
				leaked++
			} else {
				pipe.Set(ctx, key, val, ttl+10*time.Minute)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return leaked, fmt.Errorf("set tokens %d..: %w", from, err)
		}
	}
	return leaked, nil
}

// SeedFileRows inserts n GC candidates (status 2, ref_count 0, unchanged for two days) with
// ids 1..n whose objects are bucket/f/<id>, and n live files (status 1) the sweep must not
// touch, into file_metadata of the pool's search_path.
func SeedFileRows(ctx context.Context, pool *pgxpool.Pool, bucket string, n int64, size int) error {
	if err := RequireLocal(pool); err != nil {
		return err
	}
	for from := int64(1); from <= 2*n; from += volumeBatch {
		to := min(from+volumeBatch-1, 2*n)
		// Candidates and live files interleave (odd ids live) as users delete files at random.
		if _, err := pool.Exec(ctx, `INSERT INTO file_metadata (id, file_hash, bucket, object_path, size_bytes,
				ref_count, status, created_at, updated_at)
			SELECT g, md5(g::text), $3, 'f/' || g, $4,
				CASE WHEN g % 2 = 0 THEN 0 ELSE 1 END, CASE WHEN g % 2 = 0 THEN 2 ELSE 1 END,
				now() - interval '30 days', now() - interval '2 days'
			FROM generate_series($1::bigint, $2::bigint) g`, from, to, bucket, size); err != nil {
			return fmt.Errorf("insert files %d..%d: %w", from, to, err)
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE file_metadata`); err != nil {
		return fmt.Errorf("analyze file_metadata: %w", err)
	}
	return nil
}

// FileCandidateID is the id of the i-th GC candidate (0-based) of SeedFileRows.
func FileCandidateID(i int64) int64 { return 2 * (i + 1) }

// PutObjects writes the objects of ids (size bytes each) with workers concurrent PUTs and
// returns the rate achieved (objects per second).
func PutObjects(ctx context.Context, s3 *minio.Client, bucket string, ids func(i int64) int64, n int64, size, workers int) (float64, error) {
	body := make([]byte, size)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				key := fmt.Sprintf("f/%d", ids(i))
				if _, err := s3.PutObject(ctx, bucket, key, bytes.NewReader(body), int64(size), minio.PutObjectOptions{}); err != nil {
					errs <- fmt.Errorf("put %s/%s: %w", bucket, key, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
