// Demo files for the file GC (jobctl seed-demo). Not a package doc: other seeders of this
// package carry it.

package demo

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
)

// Demo file ids live in their own range so they never collide with other demo data.
const fileIDBase = 9_000_000

type demoFile struct {
	n        int64
	status   int
	refCount int
	age      time.Duration // since the last update
	object   bool          // upload the object
	note     string
}

// The mix the GC sees: live files it must keep, deleted ones still in their grace period or
// still referenced, and collectable ones (one of them with its object already gone).
var demoFiles = func() []demoFile {
	var out []demoFile
	for i := int64(1); i <= 10; i++ {
		out = append(out, demoFile{n: i, status: 1, refCount: int(i%3) + 1, age: time.Duration(i) * time.Hour, object: true, note: "live"})
	}
	for i := int64(11); i <= 18; i++ {
		out = append(out, demoFile{n: i, status: 2, refCount: 0, age: 48 * time.Hour, object: true, note: "collectable"})
	}
	out = append(out,
		demoFile{n: 19, status: 2, refCount: 0, age: 72 * time.Hour, object: false, note: "collectable, object already gone"},
		demoFile{n: 20, status: 2, refCount: 0, age: time.Hour, object: true, note: "deleted, in its grace period"},
		demoFile{n: 21, status: 2, refCount: 1, age: 48 * time.Hour, object: true, note: "deleted by one user, referenced by another"},
	)
	return out
}()

// GCFiles is how many files SeedFiles writes.
func GCFiles() int { return len(demoFiles) }

// SeedFiles makes bucket (if missing) and the demo's file_metadata rows and objects. Rows are
// upserted by id and objects overwritten, so a second run restores what the GC removed.
// file_metadata must exist (deploy/local/chat_schema.sql).
func SeedFiles(ctx context.Context, pool *pgxpool.Pool, s3 *minio.Client, bucket string) error {
	exists, err := s3.BucketExists(ctx, bucket)
	if err != nil {
		return fmt.Errorf("seed files: bucket %s: %w", bucket, err)
	}
	if !exists {
		if err := s3.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
			return fmt.Errorf("seed files: make bucket %s: %w", bucket, err)
		}
	}
	for _, f := range demoFiles {
		id := fileIDBase + f.n
		key := fmt.Sprintf("demo/%d.txt", id)
		body := []byte(fmt.Sprintf("demo file %d: %s\n", id, f.note))
		if f.object {
			if _, err := s3.PutObject(ctx, bucket, key, bytes.NewReader(body), int64(len(body)),
				minio.PutObjectOptions{ContentType: "text/plain"}); err != nil {
				return fmt.Errorf("seed files: put %s/%s: %w", bucket, key, err)
			}
		} else if err := s3.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{}); err != nil {
			return fmt.Errorf("seed files: remove %s/%s: %w", bucket, key, err)
		}
		_, err := pool.Exec(ctx, `
			INSERT INTO file_metadata (id, file_hash, bucket, object_path, size_bytes, ref_count, status, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, now() - $8::interval - interval '1 day', now() - $8::interval)
			ON CONFLICT (id) DO UPDATE SET file_hash = EXCLUDED.file_hash, bucket = EXCLUDED.bucket,
				object_path = EXCLUDED.object_path, size_bytes = EXCLUDED.size_bytes, ref_count = EXCLUDED.ref_count,
				status = EXCLUDED.status, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at`,
			id, fmt.Sprintf("demo-%x", id), bucket, key, len(body), f.refCount, f.status, f.age.String())
		if err != nil {
			return fmt.Errorf("seed files: row %d: %w", id, err)
		}
	}
	return nil
}
