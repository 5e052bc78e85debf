package archive

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"

	"github.com/chatplat/job-service/sqlident"
)

// partitionLock is a session advisory lock on one partition, held on its own connection for
// the whole move (export to drop). Two movers of one partition cannot run at once, whoever
// started them: another node's run, a forced run, or a dead letter resent from the RocketMQ
// dashboard (which skip_if_running never sees). The DROP commits on this connection, so it
// happens only while the lock is held: a mover whose session died cannot drop.
type partitionLock struct {
	conn *pgxpool.Conn
	key  string
}

// errLocked: another mover holds the partition's lock.
var errLocked = errors.New("another run is moving this partition (its lock is held); it resumes from the manifest if that run stops")

// lockPartition takes the partition's lock, waiting lock_timeout and retrying lock_retries
// times; errLocked when another mover still holds it.
func (a *Archiver) lockPartition(ctx context.Context, p parent, part string) (*partitionLock, error) {
	c, err := a.db.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock %s.%s: %w", p.Schema, part, err)
	}
	l := &partitionLock{conn: c, key: p.Schema + "." + p.Name + "." + part}
	err = a.withLockRetry(ctx, func() error {
		if _, err := c.Exec(ctx, `SELECT set_config('lock_timeout', $1, false)`, a.lockTimeout()); err != nil {
			return err
		}
		_, err := c.Exec(ctx, `SELECT pg_advisory_lock(hashtext('partition_archives'), hashtext($1))`, l.key)
		return err
	})
	if err == nil {
		if _, err = c.Exec(ctx, `RESET lock_timeout`); err == nil {
			return l, nil
		}
	}
	// Not held (or unsure): end the session rather than return it to the pool half-set.
	_ = c.Conn().Close(context.WithoutCancel(ctx))
	c.Release()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55P03" {
		return nil, errLocked
	}
	return nil, fmt.Errorf("lock %s.%s: %w", p.Schema, part, err)
}

// release frees the lock. When that cannot be confirmed (the run was cancelled, Postgres is
// unreachable) the session is closed instead, which frees it on the server.
func (l *partitionLock) release(ctx context.Context) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := ctx.Err()
	if err == nil {
		_, err = l.conn.Exec(rctx, `SELECT pg_advisory_unlock(hashtext('partition_archives'), hashtext($1))`, l.key)
	}
	if err != nil {
		_ = l.conn.Conn().Close(rctx)
	}
	l.conn.Release()
}

// alive checks that the lock's session still runs, so the lock is still held: a session
// reaped by idle_session_timeout, a NAT or pg_terminate_backend freed it for another mover.
func (l *partitionLock) alive(ctx context.Context) error {
	if _, err := l.conn.Exec(ctx, `SELECT 1`); err != nil {
		return fmt.Errorf("the lock on %s is lost (its session ended): %w", l.key, err)
	}
	return nil
}

// startExport gives the export about to start an object key of its own, recorded in the
// manifest on the lock's session (so only while the lock is held) before anything is written.
// A mover that lost its lock mid-export and uploads late writes to its own key, which the
// manifest no longer names: it cannot replace the object a later mover verified, and
// recordExport refuses its result. Only the first export of a row this run made keeps the
// key the row was made with: no other export of it can be running.
func (a *Archiver) startExport(ctx context.Context, e *Entry, lk *partitionLock) error {
	if e.claimedNow && e.Attempts == 0 {
		e.claimedNow = false
		return nil
	}
	e.claimedNow = false
	old := e.ObjectKey
	if err := setExportKey(ctx, lk.conn, e, nextExportKey(e)); err != nil {
		return err
	}
	// An earlier export killed mid-upload may have left a multipart upload open; its parts cost storage.
	if err := a.s3.RemoveIncompleteUpload(ctx, e.Bucket, old); err != nil {
		return fmt.Errorf("remove incomplete upload of %s: %w", old, err)
	}
	return nil
}

// objectKey is <prefix>/<schema>/<table>/<partition>.csv.gz; the schema is there because
// tests and tenants may keep same-named tables in several schemas. Each name must be a plain
// identifier: a partition named with "/" or ".." would otherwise write (and later drop
// after "verifying") an object outside its table's folder, or over another's.
func (a *Archiver) objectKey(p parent, part string) (string, error) {
	for _, n := range []string{p.Schema, p.Name, part} {
		if !sqlident.Plain(n) {
			return "", fmt.Errorf("%w: %q cannot name an object key (letters, digits and _ only, at most 63): rename the partition to archive it",
				ErrRefused, n)
		}
	}
	return path.Join(a.cfg.Prefix, p.Schema, p.Name, part+".csv.gz"), nil
}

// refreshColumns makes the export about to start write the table's columns as they are now:
// a column added (or retyped) while an earlier attempt stalled is archived too.
func (a *Archiver) refreshColumns(ctx context.Context, e *Entry) error {
	cols, err := tableColumns(ctx, a.db, e.ParentSchema, e.Partition)
	if err != nil {
		return err
	}
	if slices.Equal(cols, e.Columns) {
		return nil
	}
	a.log.WarnContext(ctx, "partition columns changed since the claim; exporting the current ones",
		"partition", e.Name(), "was", columnList(e.Columns), "now", columnList(cols))
	return setColumns(ctx, a.db, e, cols)
}

// columnsUnchanged compares the table's columns (names and types, in order) with the archived
// ones; run inside the drop's transaction, after the table is locked.
func columnsUnchanged(ctx context.Context, q querier, e *Entry) error {
	cols, err := tableColumns(ctx, q, e.ParentSchema, e.Partition)
	if err != nil {
		return err
	}
	if !slices.Equal(cols, e.Columns) {
		return fmt.Errorf("%w: columns now (%s), archived (%s)", errMismatch, describe(cols), describe(e.Columns))
	}
	return nil
}

func describe(cols []column) string {
	s := ""
	for i, c := range cols {
		if i > 0 {
			s += ", "
		}
		s += c.Name + " " + c.Type
	}
	return s
}

// objectUnchanged reads the object's size and ETag again (HEAD) and compares them with what
// the verify saw: an object replaced since (a stale mover's late upload of an older copy) is
// not the copy the manifest vouches for. A row verified by an older release has no ETag: the
// object is read back in full instead.
func (a *Archiver) objectUnchanged(ctx context.Context, e *Entry) error {
	if e.ObjectETag == "" {
		got, err := a.readBack(ctx, e, nil)
		if err != nil {
			return err
		}
		return compare(e, got, true)
	}
	info, err := a.s3.StatObject(ctx, e.Bucket, e.ObjectKey, minio.StatObjectOptions{})
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return fmt.Errorf("%w: object %s/%s is gone", errMismatch, e.Bucket, e.ObjectKey)
		}
		return fmt.Errorf("head %s/%s: %w", e.Bucket, e.ObjectKey, err)
	}
	if e.Bytes == nil || info.Size != *e.Bytes || info.ETag != e.ObjectETag {
		return fmt.Errorf("%w: object %s/%s is %d bytes, ETag %s; verified %v bytes, ETag %s",
			errMismatch, e.Bucket, e.ObjectKey, info.Size, info.ETag, deref(e.Bytes), e.ObjectETag)
	}
	return nil
}
