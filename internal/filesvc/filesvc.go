// Package filesvc plays the chat platform's file service in tests: every statement it runs on
// file_metadata is the one the file GC contract (docs/contracts.md) tells the file service to run, and a
// test (TestContractSQLIsTheREADMEs) keeps the two texts identical.
package filesvc

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The contract's statements, for the default table and column names.
const (
	// LockObject is the first statement of every transaction that makes a row name an object
	// (a new row or a re-pointed one). The GC takes the same lock for each object it is
	// about to tombstone, before it looks for other rows naming the object.
	LockObject = `SELECT pg_advisory_xact_lock(hashtext('file_object'), hashtext($1 || '/' || $2))`

	// DedupInsert adds a row naming an existing object: only while a live row (not a
	// tombstone) names it, so the object is there and no GC can delete it.
	DedupInsert = `INSERT INTO file_metadata (bucket, object_path, id, file_hash, size_bytes, ref_count, status)
SELECT $1, $2, $3, $4, $5, 1, 1
WHERE EXISTS (SELECT 1 FROM file_metadata WHERE bucket = $1 AND object_path = $2 AND status <> 3)`

	// Repoint makes row $3 name an existing object, under the same condition as DedupInsert.
	// A tombstone is never re-pointed: it is as good as gone, and the GC collects the object
	// it names.
	Repoint = `UPDATE file_metadata SET bucket = $1, object_path = $2, updated_at = now()
WHERE id = $3 AND status <> 3 AND EXISTS (SELECT 1 FROM file_metadata WHERE bucket = $1 AND object_path = $2 AND status <> 3)`

	// UploadInsert adds the row of an object the file service is about to write (it PUTs the
	// object after this commits): refused while a tombstone names that object.
	UploadInsert = `INSERT INTO file_metadata (bucket, object_path, id, file_hash, size_bytes, ref_count, status)
SELECT $1, $2, $3, $4, $5, 1, 1
WHERE NOT EXISTS (SELECT 1 FROM file_metadata WHERE bucket = $1 AND object_path = $2 AND status = 3)`

	// Reference adds a reference to a row; a tombstone (status 3) is never re-referenced.
	Reference = `UPDATE file_metadata SET ref_count = ref_count + 1, status = 1, updated_at = now()
WHERE id = $1 AND status <> 3`

	// Release drops a reference; at 0 the row is deleted by its users (status 2) and the file
	// service sends the REF_ZERO event with the returned updated_at as event_time.
	Release = `UPDATE file_metadata SET ref_count = ref_count - 1,
	status = CASE WHEN ref_count = 1 THEN 2 ELSE status END, updated_at = now()
WHERE id = $1 AND status = 1 AND ref_count > 0
RETURNING ref_count, bucket, object_path, file_hash, updated_at`
)

// ErrRefused means the contract's condition did not hold: the object is being collected (or,
// for a dedup, no live row names it any more). The file service uploads again at another path.
var ErrRefused = errors.New("refused by the file GC contract")

// Object names an object.
type Object struct{ Bucket, Path string }

// Row is what the file service writes.
type Row struct {
	ID   int64
	Hash string
	Size int64
}

// Begin opens every transaction that takes an object lock. READ COMMITTED, whatever the
// server's default: each statement after the lock must see what the GC committed while this
// transaction waited for it; a REPEATABLE READ snapshot is taken at the first statement, the
// lock itself, before the wait ends.
const Begin = `BEGIN ISOLATION LEVEL READ COMMITTED`

// WithObjectLock runs fn in a transaction (Begin) that first takes obj's lock (LockObject).
// fn's statement must affect one row; none is ErrRefused.
func WithObjectLock(ctx context.Context, db *pgxpool.Pool, obj Object, fn func(tx pgx.Tx) (int64, error)) error {
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}) // Begin
	if err != nil {
		return fmt.Errorf("file service: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, LockObject, obj.Bucket, obj.Path); err != nil {
		return fmt.Errorf("file service: lock %s/%s: %w", obj.Bucket, obj.Path, err)
	}
	n, err := fn(tx)
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrRefused
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("file service: commit: %w", err)
	}
	return nil
}

// AddDedup inserts row naming obj (DedupInsert) under obj's lock.
func AddDedup(ctx context.Context, db *pgxpool.Pool, obj Object, row Row) error {
	return WithObjectLock(ctx, db, obj, func(tx pgx.Tx) (int64, error) {
		tag, err := tx.Exec(ctx, DedupInsert, obj.Bucket, obj.Path, row.ID, row.Hash, row.Size)
		if err != nil {
			return 0, fmt.Errorf("file service: dedup insert %d: %w", row.ID, err)
		}
		return tag.RowsAffected(), nil
	})
}

// MoveTo re-points row id at obj (Repoint) under obj's lock.
func MoveTo(ctx context.Context, db *pgxpool.Pool, obj Object, id int64) error {
	return WithObjectLock(ctx, db, obj, func(tx pgx.Tx) (int64, error) {
		tag, err := tx.Exec(ctx, Repoint, obj.Bucket, obj.Path, id)
		if err != nil {
			return 0, fmt.Errorf("file service: re-point %d: %w", id, err)
		}
		return tag.RowsAffected(), nil
	})
}

// AddUpload inserts the row of a new object (UploadInsert) under obj's lock; the caller PUTs
// the object after it returns nil.
func AddUpload(ctx context.Context, db *pgxpool.Pool, obj Object, row Row) error {
	return WithObjectLock(ctx, db, obj, func(tx pgx.Tx) (int64, error) {
		tag, err := tx.Exec(ctx, UploadInsert, obj.Bucket, obj.Path, row.ID, row.Hash, row.Size)
		if err != nil {
			return 0, fmt.Errorf("file service: upload insert %d: %w", row.ID, err)
		}
		return tag.RowsAffected(), nil
	})
}
