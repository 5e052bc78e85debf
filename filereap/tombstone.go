package filereap

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// finishTimeout bounds the transaction that deletes collected rows. It runs on a context the
// run's cancellation does not cut: a drain, a job timeout or a lost claim after S3 deleted the
// objects must not leave the rows behind (they would be harmless tombstones, but the next run
// would redo the batch).
const finishTimeout = 30 * time.Second

// ObjectLockSQL is the lock the GC and the file service take on an object (bucket, path)
// before the GC looks for rows naming it and before the file service makes a row name it. It
// is the contract's (docs/contracts.md), byte for byte: both sides must compute the same key. The
// two-key form keeps its keys apart from the one-key advisory locks of the ticker lease.
const ObjectLockSQL = `pg_advisory_xact_lock(hashtext('file_object'), hashtext(%s || '/' || %s))`

type object struct{ bucket, path string }

// lockCandidateObjects takes the object lock of every object the candidate rows (eligible or
// tombstones) name, before their rows are locked, in one order (by key) so two GC batches
// sharing objects cannot deadlock; it returns the objects locked. Held until tx ends: a file
// service statement that makes a row name one of these objects either committed before
// (markShared then sees its row and keeps the object) or runs after the tombstones committed,
// and its condition refuses (a dedup needs a live row; an upload, no tombstone). A row
// re-pointed between this read and its row lock names an object not locked: it is skipped.
func (r *Reaper) lockCandidateObjects(ctx context.Context, tx pgx.Tx, ids []int64) (map[object]bool, error) {
	s := r.sql
	if r.beforeObjectLocks != nil {
		r.beforeObjectLocks(ctx, ids)
	}
	lock := fmt.Sprintf(ObjectLockSQL, "b", "p")
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT b, p, `+lock+` FROM (
		SELECT DISTINCT %s AS b, %s AS p, hashtext(%s || '/' || %s) AS k FROM %s
		WHERE %s = ANY($1) AND (%s OR %s = %d) ORDER BY k) s ORDER BY k`,
		s.Bucket, s.Path, s.Bucket, s.Path, s.Table, s.ID, s.Eligible(), s.Status, s.Collecting), ids)
	if err != nil {
		return nil, fmt.Errorf("gc: lock the objects of %d files: %w", len(ids), err)
	}
	locked := map[object]bool{}
	for rows.Next() {
		var o object
		if err := rows.Scan(&o.bucket, &o.path, nil); err != nil {
			rows.Close()
			return nil, fmt.Errorf("gc: lock the objects of %d files: %w", len(ids), err)
		}
		locked[o] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("gc: lock the objects of %d files: %w", len(ids), err)
	}
	return locked, nil
}

// markShared flags rows whose object another row still names (same bucket and path) that is
// not a tombstone of this batch: that object stays, only the row goes. Rows in the collecting
// status elsewhere are not live (nobody can re-reference them).
func (r *Reaper) markShared(ctx context.Context, tx pgx.Tx, keep []lockedRow, res *ReapResult) error {
	s := r.sql
	ids := make([]int64, len(keep))
	buckets := make([]string, len(keep))
	paths := make([]string, len(keep))
	for i, k := range keep {
		ids[i], buckets[i], paths[i] = k.entry.FileID, k.entry.Bucket, k.entry.ObjectPath
	}
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT DISTINCT t.%s, t.%s FROM %s t
		JOIN unnest($2::text[], $3::text[]) AS k(bucket, path) ON t.%s = k.bucket AND t.%s = k.path
		WHERE t.%s <> ALL($1) AND t.%s <> %d`,
		s.Bucket, s.Path, s.Table, s.Bucket, s.Path, s.ID, s.Status, s.Collecting), ids, buckets, paths)
	if err != nil {
		return fmt.Errorf("gc: look for rows sharing the objects: %w", err)
	}
	shared := map[object]bool{}
	for rows.Next() {
		var o object
		if err := rows.Scan(&o.bucket, &o.path); err != nil {
			rows.Close()
			return fmt.Errorf("gc: look for rows sharing the objects: %w", err)
		}
		shared[o] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("gc: look for rows sharing the objects: %w", err)
	}
	for i := range keep {
		if shared[object{keep[i].entry.Bucket, keep[i].entry.ObjectPath}] {
			keep[i].shared = true
		}
	}
	return nil
}

// tombstone moves the rows to the collecting status and records them in gc_tombstones, in tx.
// updated_at is left alone: it is the file service's column.
func (r *Reaper) tombstone(ctx context.Context, tx pgx.Tx, keep []lockedRow, owner Owner) error {
	s := r.sql
	ids := make([]int64, len(keep))
	buckets := make([]string, len(keep))
	paths := make([]string, len(keep))
	for i, k := range keep {
		ids[i], buckets[i], paths[i] = k.entry.FileID, k.entry.Bucket, k.entry.ObjectPath
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s SET %s = %d WHERE %s = ANY($1)`,
		s.Table, s.Status, s.Collecting, s.ID), ids); err != nil {
		return fmt.Errorf("gc: tombstone %d rows: %w", len(ids), err)
	}
	// A tombstone an earlier run left and this one resumes becomes this attempt's, and its age
	// counts from now: this attempt's S3 call is its latest, and nobody may finish it (delete
	// its row, letting the same key be uploaded again) until that call is over.
	var runID *int64
	var attempt *int
	if owner.RunID != 0 {
		runID, attempt = &owner.RunID, &owner.Attempt
	}
	if _, err := tx.Exec(ctx, `INSERT INTO gc_tombstones (file_id, bucket, object_path, run_id, attempt, tombstoned_at)
		SELECT f, b, p, $4, $5, clock_timestamp() FROM unnest($1::bigint[], $2::text[], $3::text[]) AS t(f, b, p)
		ON CONFLICT (file_id) DO UPDATE SET run_id = EXCLUDED.run_id, attempt = EXCLUDED.attempt,
			tombstoned_at = EXCLUDED.tombstoned_at`,
		ids, buckets, paths, runID, attempt); err != nil {
		return fmt.Errorf("gc: record %d tombstones: %w", len(ids), err)
	}
	return nil
}

// deleteCollected deletes the tombstoned rows whose objects are gone (or kept for another
// row), with their gc_tombstones entries, writes gc_log and the run record, and commits. It
// runs on a context detached from ctx's cancellation, bounded by finishTimeout. A row another
// run finished meanwhile is simply not counted here.
func (r *Reaper) deleteCollected(ctx context.Context, gone []lockedRow, opts ReapOptions, res *ReapResult) error {
	dbctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	t0 := time.Now()
	tx, err := r.db.BeginTx(dbctx, readCommitted)
	if err != nil {
		return fmt.Errorf("gc: begin delete (rows stay tombstoned): %w", err)
	}
	defer tx.Rollback(dbctx) //nolint:errcheck // a no-op after Commit
	gids := make([]int64, len(gone))
	for i, g := range gone {
		gids[i] = g.entry.FileID
	}
	s := r.sql
	var deleted []int64
	if len(gids) > 0 {
		rows, err := tx.Query(dbctx, fmt.Sprintf(`DELETE FROM %s WHERE %s = ANY($1) AND %s = %d RETURNING %s`,
			s.Table, s.ID, s.Status, s.Collecting, s.ID), gids)
		if err != nil {
			return fmt.Errorf("gc: delete rows (they stay tombstoned): %w", err)
		}
		if deleted, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
			return fmt.Errorf("gc: delete rows (they stay tombstoned): %w", err)
		}
		if _, err := tx.Exec(dbctx, `DELETE FROM gc_tombstones WHERE file_id = ANY($1)`, deleted); err != nil {
			return fmt.Errorf("gc: drop tombstones: %w", err)
		}
	}
	res.DeleteTime = time.Since(t0)
	done := make(map[int64]bool, len(deleted))
	for _, id := range deleted {
		done[id] = true
	}
	for _, g := range gone {
		if !done[g.entry.FileID] {
			continue
		}
		res.Removed = append(res.Removed, g.entry)
		switch {
		case g.shared:
			res.Shared++
		case g.entry.ObjectMissing:
			res.Missing++
		default:
			res.Bytes += g.entry.Bytes
		}
	}
	return r.finish(dbctx, tx, opts, res)
}

// dropVanishedTombstones forgets tombstones whose row is gone (deleted by someone else).
func dropVanishedTombstones(ctx context.Context, tx pgx.Tx, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `DELETE FROM gc_tombstones WHERE file_id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("gc: drop tombstones of vanished rows: %w", err)
	}
	return nil
}

// StaleTombstones lists up to limit tombstones of shard (file_id % total = index) older than
// age, above after: work a cancelled, timed-out or killed run left behind.
func (r *Reaper) StaleTombstones(ctx context.Context, index, total int, age time.Duration, after int64, limit int) ([]int64, error) {
	rows, err := r.db.Query(ctx, `SELECT file_id FROM gc_tombstones
		WHERE tombstoned_at < now() - make_interval(secs => $1) AND mod(file_id, $2) = $3 AND file_id > $4
		ORDER BY file_id LIMIT $5`, age.Seconds(), total, index, after, limit)
	if err != nil {
		return nil, fmt.Errorf("gc: read tombstones: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("gc: read tombstones: %w", err)
	}
	return ids, nil
}

// DeadAttemptTombstones lists up to limit tombstones, above after, that earlier attempts of
// run left: the consumer fences a run by attempt, so an earlier attempt can no longer record
// anything and its tombstones are this attempt's to finish, whatever their age. Reap waits
// until they are s3Timeout old before it touches them: the earlier attempt's multi-delete
// may still be running on the S3 server (a client's cancel does not stop it), and once the
// row is gone the same file may be uploaded again to the same key.
func (r *Reaper) DeadAttemptTombstones(ctx context.Context, owner Owner, after int64, limit int) ([]int64, error) {
	rows, err := r.db.Query(ctx, `SELECT file_id FROM gc_tombstones
		WHERE run_id = $1 AND attempt < $2 AND file_id > $3 ORDER BY file_id LIMIT $4`,
		owner.RunID, owner.Attempt, after, limit)
	if err != nil {
		return nil, fmt.Errorf("gc: read tombstones of run %d: %w", owner.RunID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("gc: read tombstones of run %d: %w", owner.RunID, err)
	}
	return ids, nil
}

// errYoungTombstone: a tombstone of the batch, checked under its row lock, is younger than
// s3Timeout (another GC took it over after Reap's wait); Reap waits and tries again.
var errYoungTombstone = errors.New("gc: a tombstone is younger than s3_timeout")

// checkTombstonesAged returns errYoungTombstone when a tombstone among keep, locked, is
// younger than s3Timeout. Under the row lock no other GC can take it over any more, so a
// tombstone found old enough here stays so until this batch is done.
func (r *Reaper) checkTombstonesAged(ctx context.Context, tx pgx.Tx, keep []lockedRow) error {
	var ids []int64
	for _, k := range keep {
		if k.collecting {
			ids = append(ids, k.entry.FileID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var young bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM gc_tombstones WHERE file_id = ANY($1)
		AND tombstoned_at > clock_timestamp() - make_interval(secs => $2))`, ids, r.s3Timeout.Seconds()).Scan(&young); err != nil {
		return fmt.Errorf("gc: read the tombstones' age: %w", err)
	}
	if young {
		return errYoungTombstone
	}
	return nil
}

// readCommitted is the level of every GC transaction, whatever the server's or the role's
// default_transaction_isolation: the shared-object check must see rows the file service
// committed while the GC waited for the object locks, which a REPEATABLE READ or SERIALIZABLE
// snapshot (taken at the transaction's first statement) would not.
var readCommitted = pgx.TxOptions{IsoLevel: pgx.ReadCommitted}

// tombstonePoll is how often a wait for a tombstone's age looks again: the GC that wrote it
// usually finishes it (its row gone) long before s3Timeout, and then there is nothing to wait for.
const tombstonePoll = 500 * time.Millisecond

// waitForEarlierS3Calls returns once every tombstone among ids is s3Timeout old (its last S3
// call, bounded by s3Timeout from before the tombstone was written, is over) or gone, or when
// ctx ends. A multi-delete a cut run sent may still be deleting on the server; finishing its
// tombstones sooner would drop their rows, and the same file uploaded again to the same key
// (keys are content-addressed) would then lose its new object to that delete.
func (r *Reaper) waitForEarlierS3Calls(ctx context.Context, ids []int64) error {
	logged := false
	for {
		var secs float64
		if err := r.db.QueryRow(ctx, `SELECT COALESCE(EXTRACT(EPOCH FROM
			max(tombstoned_at) + make_interval(secs => $2) - clock_timestamp()), 0)::float8
			FROM gc_tombstones WHERE file_id = ANY($1)`, ids, r.s3Timeout.Seconds()).Scan(&secs); err != nil {
			return fmt.Errorf("gc: read the tombstones' age: %w", err)
		}
		if secs <= 0 {
			return nil
		}
		wait := time.Duration(secs * float64(time.Second))
		if !logged {
			r.log.InfoContext(ctx, "gc: waiting for an earlier S3 call on these tombstones to be over", "at_most", wait)
			logged = true
		}
		t := time.NewTimer(min(wait, tombstonePoll))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("gc: waiting %s for an earlier S3 call on the tombstones (they stay): %w", wait, ctx.Err())
		}
	}
}
