package filereap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"

	"github.com/chatplat/job-service/ledger"
)

// ObjectStore is what the GC needs of S3; *minio.Client implements it.
type ObjectStore interface {
	RemoveObjectsWithResult(ctx context.Context, bucket string, objects <-chan minio.ObjectInfo, opts minio.RemoveObjectsOptions) <-chan minio.RemoveObjectResult
	StatObject(ctx context.Context, bucket, object string, opts minio.StatObjectOptions) (minio.ObjectInfo, error)
}

// Candidate is a file the caller believes collectable. The reaper re-checks it under a row
// lock before touching its object.
type Candidate struct {
	ID int64
	// NotAfter: the row is collected only if its updated_at is not later. The sweep passes
	// its cutoff (now - grace), an event its event time: a row touched since is left alone.
	NotAfter time.Time
	// Bucket and ObjectPath, when set (events), must still be the row's: an event naming
	// another object than the row is not acted on.
	Bucket, ObjectPath string
}

// Skip says why a candidate was not collected.
type Skip struct {
	FileID int64  `json:"file_id"`
	Reason string `json:"reason"`
}

// Skip reasons.
const (
	SkipReferenced = "referenced"       // the row exists but is no longer status=deleted, ref_count=0
	SkipChanged    = "changed"          // updated after the event or the cutoff
	SkipMismatch   = "object_mismatch"  // the event names another bucket/path than the row
	SkipGone       = "already_deleted"  // the row is gone and gc_log has it: a duplicate
	SkipUnknown    = "unknown_file"     // no such row, never collected by us
	SkipCapped     = "over_max_deletes" // left for a later run by the per-run cap
)

// ObjectFailure is an object S3 refused to delete; its row is kept.
type ObjectFailure struct {
	FileID     int64  `json:"file_id"`
	Bucket     string `json:"bucket"`
	ObjectPath string `json:"object_path"`
	Error      string `json:"error"`
}

// ReapResult is what one Reap did.
type ReapResult struct {
	Eligible    int              // rows that passed the locked re-check
	Removed     []ledger.GCEntry // rows deleted (objects gone), as written to gc_log
	Missing     int              // of Removed, objects that were already gone
	Bytes       int64            // bytes of Removed whose objects we deleted
	Skips       []Skip           // candidates left alone
	Failures    []ObjectFailure  // objects that could not be deleted; rows kept as tombstones
	Resumed     int              // tombstones an earlier run left, finished by this one
	Shared      int              // of Removed, rows whose object another live row names: object kept
	WouldRemove []ledger.GCEntry // dry run: what would have been removed
	// Where the time went, for the batch record: waiting for and re-checking the rows, S3,
	// deleting the rows.
	LockTime, S3Time, DeleteTime time.Duration
}

// ReapOptions tune one Reap.
type ReapOptions struct {
	DryRun bool
	// CheckMissing stats each object first, so missing objects are counted (S3 multi-delete
	// reports a missing key as deleted). Costs one HEAD per object.
	CheckMissing bool
	// Limit caps the rows collected; the rest are skipped as over_max_deletes. 0: no cap.
	Limit int
	// RunID returns the ledger run the gc_log rows belong to. It is called inside the
	// transaction just before commit, after the rows are deleted, so a batch can record its
	// own run row with the final counts and commit it atomically with the deletion.
	RunID func(ctx context.Context, tx pgx.Tx, res *ReapResult) (int64, error)
	// Owner is the run and attempt the tombstones are recorded for: a later attempt of the
	// same run finishes them (DeadAttemptTombstones) once they are s3Timeout old, without
	// waiting for the next run. Zero: finished by a later run's age check only.
	Owner Owner
}

// Owner names the attempt of a ledger run that wrote tombstones.
type Owner struct {
	RunID   int64
	Attempt int
}

// Reaper removes collectable files: object first, then row, never a row whose object is still
// there and never an object whose row is referenced.
//
// The rows are re-checked under a row lock (SELECT ... FOR UPDATE), so a writer that
// re-references a file (ref_count+1) either commits before the re-check (the file is skipped)
// or waits. In that same transaction the rows move to the collecting status (a tombstone the
// file service must not re-reference) and the transaction commits before S3 is called. So
// whatever ends the run afterwards (cancel, timeout, kill -9, an S3 call that deleted and then
// timed out), no re-referenceable row points at a deleted object: the rows left behind are
// tombstones, finished by the next run. An object that another live row (same bucket and
// path) names is never deleted; only the collected row goes. That check runs under a lock on
// each object (ObjectLockSQL) that the file service also takes before it makes a row name an
// object, so no such row can appear between the check and the delete.
type Reaper struct {
	db          *pgxpool.Pool
	s3          ObjectStore
	sql         SQL
	lockTimeout time.Duration
	s3Timeout   time.Duration
	s3Parallel  int
	statWorkers int
	log         *slog.Logger

	// beforeObjectLocks, when set (tests), runs before the batch's objects and rows are locked.
	beforeObjectLocks func(ctx context.Context, ids []int64)
	// afterLock, when set (tests), runs after the objects and rows are locked and before S3
	// is called.
	afterLock func(ctx context.Context, ids []int64)
	// beforeCommit, when set (tests), runs after the tombstones are written and before their
	// transaction commits: the last moment a writer could slip a row past the checks.
	beforeCommit func(ctx context.Context, ids []int64)
}

// ReaperOptions tune a Reaper. Both file GCs (the file_gc sweep and the event GC) embed them
// inline in their config sections, so the keys and their checks are written once; each GC
// keeps its own defaults.
type ReaperOptions struct {
	// LockTimeout bounds the wait for a row a writer holds.
	LockTimeout time.Duration `yaml:"lock_timeout"`
	// S3Timeout bounds one batch's S3 calls (minio-go retries inside it).
	S3Timeout time.Duration `yaml:"s3_timeout"`
	// S3Parallel is how many multi-delete requests one batch sends at once (default 4).
	S3Parallel int `yaml:"s3_parallel"`
}

// WithDefaults fills unset fields, with s3Timeout as the S3 timeout's default (each GC has its own).
func (o ReaperOptions) WithDefaults(s3Timeout time.Duration) ReaperOptions {
	if o.LockTimeout == 0 {
		o.LockTimeout = 5 * time.Second
	}
	if o.S3Timeout == 0 {
		o.S3Timeout = s3Timeout
	}
	if o.S3Parallel == 0 {
		o.S3Parallel = 4
	}
	return o
}

// Validate names the first bad key.
func (o ReaperOptions) Validate() error {
	switch {
	case o.LockTimeout < 10*time.Millisecond:
		return fmt.Errorf("lock_timeout: %s is below 10ms", o.LockTimeout)
	case o.S3Timeout < time.Second:
		return fmt.Errorf("s3_timeout: %s is below 1s", o.S3Timeout)
	case o.S3Parallel < 1 || o.S3Parallel > 64:
		return fmt.Errorf("s3_parallel: %d is outside 1..64", o.S3Parallel)
	}
	return nil
}

// OnLocked sets a hook run after a batch's objects and rows are locked, before the
// shared-object check and S3. Tests use it to race a writer against the locks; production
// code leaves it unset.
func (r *Reaper) OnLocked(fn func(ctx context.Context, ids []int64)) { r.afterLock = fn }

// BeforeLocks sets a hook run before a batch's objects and rows are locked. Tests use it to
// let the file service commit just before the GC's locks and check.
func (r *Reaper) BeforeLocks(fn func(ctx context.Context, ids []int64)) { r.beforeObjectLocks = fn }

// BeforeTombstoneCommit sets a hook run after a batch's tombstones are written and before
// they commit. Tests use it to race the file service against the shared-object check.
func (r *Reaper) BeforeTombstoneCommit(fn func(ctx context.Context, ids []int64)) {
	r.beforeCommit = fn
}

// NewReaper returns a reaper on table.
func NewReaper(db *pgxpool.Pool, s3 ObjectStore, table FileTable, opts ReaperOptions, log *slog.Logger) *Reaper {
	if opts.S3Parallel < 1 {
		opts.S3Parallel = 4
	}
	return &Reaper{db: db, s3: s3, sql: table.WithDefaults().Quoted(), lockTimeout: opts.LockTimeout,
		s3Timeout: opts.S3Timeout, s3Parallel: opts.S3Parallel, statWorkers: 16, log: log}
}

type lockedRow struct {
	entry      ledger.GCEntry
	updatedAt  time.Time
	collecting bool // a tombstone left by an earlier run
	shared     bool // another live row names the same object: it is kept
}

// Reap collects cands: one transaction re-checks, locks and tombstones them, then S3 removes
// their objects, then a second transaction deletes the rows. A candidate already tombstoned is
// touched only once it is s3Timeout old (Reap waits): the S3 call of the GC that tombstoned it
// may still be deleting at the server. An error leaves rows either
// untouched or tombstoned (never re-referenceable without their object); the next Reap or
// sweep finishes the tombstones. Objects S3 refused are in Failures, their rows kept as
// tombstones.
func (r *Reaper) Reap(ctx context.Context, cands []Candidate, opts ReapOptions) (ReapResult, error) {
	var res ReapResult
	if len(cands) == 0 {
		return res, nil
	}
	if r.s3 == nil {
		return res, ErrNoS3
	}
	byID := make(map[int64]Candidate, len(cands))
	ids := make([]int64, 0, len(cands))
	for _, c := range cands {
		if _, dup := byID[c.ID]; dup {
			continue // the same file twice in a batch: once is enough
		}
		byID[c.ID] = c
		ids = append(ids, c.ID)
	}
	for {
		if !opts.DryRun {
			if err := r.waitForEarlierS3Calls(ctx, ids); err != nil {
				return res, err
			}
		}
		res, err := r.reap(ctx, ids, byID, opts)
		if !errors.Is(err, errYoungTombstone) {
			return res, err
		}
		// Another GC took a tombstone over (and called S3) after the wait: wait again.
	}
}

// reap is one try of Reap on the deduplicated candidates.
func (r *Reaper) reap(ctx context.Context, ids []int64, byID map[int64]Candidate, opts ReapOptions) (ReapResult, error) {
	var res ReapResult
	tx, err := r.db.BeginTx(ctx, readCommitted)
	if err != nil {
		return res, fmt.Errorf("gc: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`,
		fmt.Sprintf("%dms", r.lockTimeout.Milliseconds())); err != nil {
		return res, fmt.Errorf("gc: set lock_timeout: %w", err)
	}
	s := r.sql
	t0 := time.Now()
	// The objects' locks come before the rows' locks, the order of the file service's re-point
	// (object lock, then the row's UPDATE): the other order could deadlock with it.
	locked, err := r.lockCandidateObjects(ctx, tx, ids)
	if err != nil {
		return res, err
	}
	// Rows already in the collecting status are tombstones a run left behind: they are
	// finished without the checks, nobody can have re-referenced them.
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT %s, %s, %s, %s, %s, %s, %s = %d FROM %s
		WHERE %s = ANY($1) AND (%s OR %s = %d) ORDER BY %s FOR UPDATE`,
		s.ID, s.Hash, s.Bucket, s.Path, s.Size, s.UpdatedAt, s.Status, s.Collecting, s.Table,
		s.ID, s.Eligible(), s.Status, s.Collecting, s.ID), ids)
	if err != nil {
		return res, fmt.Errorf("gc: lock rows: %w", err)
	}
	lockedRows, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (lockedRow, error) {
		var l lockedRow
		err := row.Scan(&l.entry.FileID, &l.entry.FileHash, &l.entry.Bucket, &l.entry.ObjectPath, &l.entry.Bytes, &l.updatedAt, &l.collecting)
		return l, err
	})
	if err != nil {
		return res, fmt.Errorf("gc: lock rows: %w", err)
	}
	seen := make(map[int64]bool, len(lockedRows))
	var keep []lockedRow
	for _, l := range lockedRows {
		seen[l.entry.FileID] = true
		c := byID[l.entry.FileID]
		switch {
		case !l.collecting && l.updatedAt.After(c.NotAfter),
			!locked[object{l.entry.Bucket, l.entry.ObjectPath}]: // re-pointed since its object was locked
			res.Skips = append(res.Skips, Skip{FileID: c.ID, Reason: SkipChanged})
		case !l.collecting && c.Bucket != "" && (c.Bucket != l.entry.Bucket || c.ObjectPath != l.entry.ObjectPath):
			res.Skips = append(res.Skips, Skip{FileID: c.ID, Reason: SkipMismatch})
		case opts.Limit > 0 && len(keep) >= opts.Limit:
			res.Skips = append(res.Skips, Skip{FileID: c.ID, Reason: SkipCapped})
		case l.collecting:
			res.Resumed++
			keep = append(keep, l)
		default:
			keep = append(keep, l)
		}
	}
	if !opts.DryRun {
		if err := r.checkTombstonesAged(ctx, tx, keep); err != nil {
			return res, err
		}
	}
	if err := r.classifyUnseen(ctx, tx, ids, seen, &res); err != nil {
		return res, err
	}
	res.Eligible = len(keep)
	res.LockTime = time.Since(t0)
	if len(keep) == 0 {
		return res, r.finish(ctx, tx, opts, &res)
	}
	if r.afterLock != nil {
		r.afterLock(ctx, keptIDs(keep))
	}
	if err := r.markShared(ctx, tx, keep, &res); err != nil {
		return res, err
	}
	if opts.DryRun {
		s3ctx, cancel := context.WithTimeout(ctx, r.s3Timeout)
		defer cancel()
		if opts.CheckMissing {
			r.statAll(s3ctx, keep)
		}
		for _, k := range keep {
			res.WouldRemove = append(res.WouldRemove, k.entry)
		}
		return res, nil // the deferred rollback releases the locks
	}
	// Commit the tombstones before S3 is called: from here on no row of the batch can be
	// re-referenced, so whatever happens to this process, its S3 call or its context, no
	// re-referenceable row ever points at a deleted object.
	// The S3 calls end s3Timeout after this instant, which is before the tombstones'
	// tombstoned_at: once a tombstone is s3Timeout old, no S3 call of this attempt is left.
	s3Start := time.Now()
	if err := r.tombstone(ctx, tx, keep, opts.Owner); err != nil {
		return res, err
	}
	if r.beforeCommit != nil {
		r.beforeCommit(ctx, keptIDs(keep))
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("gc: commit tombstones: %w", err)
	}
	t1 := time.Now()
	s3ctx, cancel := context.WithDeadline(ctx, s3Start.Add(r.s3Timeout))
	defer cancel()
	if opts.CheckMissing {
		r.statAll(s3ctx, keep)
	}
	gone := r.removeObjects(s3ctx, keep, &res)
	res.S3Time = time.Since(t1)
	return res, r.deleteCollected(ctx, gone, opts, &res)
}

func keptIDs(keep []lockedRow) []int64 {
	ids := make([]int64, len(keep))
	for i, k := range keep {
		ids[i] = k.entry.FileID
	}
	return ids
}

// finish records the run and the gc_log rows in tx and commits.
func (r *Reaper) finish(ctx context.Context, tx pgx.Tx, opts ReapOptions, res *ReapResult) error {
	var runID int64
	if opts.RunID != nil {
		var err error
		if runID, err = opts.RunID(ctx, tx, res); err != nil {
			return err
		}
	}
	if err := ledger.InsertGCLog(ctx, tx, runID, res.Removed); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("gc: commit: %w", err)
	}
	return nil
}

// classifyUnseen says why candidates that did not pass the locked re-check were left.
func (r *Reaper) classifyUnseen(ctx context.Context, tx pgx.Tx, ids []int64, seen map[int64]bool, res *ReapResult) error {
	var unseen []int64
	for _, id := range ids {
		if !seen[id] {
			unseen = append(unseen, id)
		}
	}
	if len(unseen) == 0 {
		return nil
	}
	s := r.sql
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT u.id, t.%s IS NOT NULL, EXISTS (SELECT 1 FROM gc_log g WHERE g.file_id = u.id)
		FROM unnest($1::bigint[]) AS u(id) LEFT JOIN %s t ON t.%s = u.id ORDER BY u.id`, s.ID, s.Table, s.ID), unseen)
	if err != nil {
		return fmt.Errorf("gc: classify skipped files: %w", err)
	}
	skips, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Skip, error) {
		var sk Skip
		var exists, logged bool
		err := row.Scan(&sk.FileID, &exists, &logged)
		switch {
		case exists:
			sk.Reason = SkipReferenced
		case logged:
			sk.Reason = SkipGone
		default:
			sk.Reason = SkipUnknown
		}
		return sk, err
	})
	if err != nil {
		return fmt.Errorf("gc: classify skipped files: %w", err)
	}
	res.Skips = append(res.Skips, skips...)
	var vanished []int64
	for _, sk := range skips {
		if sk.Reason != SkipReferenced {
			vanished = append(vanished, sk.FileID)
		}
	}
	return dropVanishedTombstones(ctx, tx, vanished)
}

// statAll marks rows whose object is already gone. Any other error leaves the row to the
// delete, which reports its own failure.
func (r *Reaper) statAll(ctx context.Context, rows []lockedRow) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, r.statWorkers)
	for i := range rows {
		wg.Add(1)
		sem <- struct{}{}
		go func(l *lockedRow) {
			defer func() { <-sem; wg.Done() }()
			if l.shared {
				return
			}
			_, err := r.s3.StatObject(ctx, l.entry.Bucket, l.entry.ObjectPath, minio.StatObjectOptions{})
			if isMissing(err) {
				l.entry.ObjectMissing = true
			}
		}(&rows[i])
	}
	wg.Wait()
}

// removeObjects deletes the objects of rows with one multi-delete per bucket (minio-go sends
// up to 1000 keys per request) and returns the rows whose objects are gone.
func (r *Reaper) removeObjects(ctx context.Context, rows []lockedRow, res *ReapResult) []lockedRow {
	byBucket := map[string][]int{}
	var gone []lockedRow
	for i, l := range rows {
		if l.entry.ObjectMissing || l.shared {
			gone = append(gone, l)
			continue
		}
		byBucket[l.entry.Bucket] = append(byBucket[l.entry.Bucket], i)
	}
	buckets := make([]string, 0, len(byBucket))
	for b := range byBucket {
		buckets = append(buckets, b)
	}
	sort.Strings(buckets)
	for _, bucket := range buckets {
		idx := byBucket[bucket]
		byKey := make(map[string][]int, len(idx))
		var keys []string
		for _, i := range idx {
			key := rows[i].entry.ObjectPath
			if _, dup := byKey[key]; !dup {
				keys = append(keys, key)
			}
			byKey[key] = append(byKey[key], i)
		}
		answered, missing, failed := r.multiDelete(ctx, bucket, keys)
		for _, key := range keys {
			if missing[key] {
				for _, i := range byKey[key] {
					rows[i].entry.ObjectMissing = true
				}
			}
			// minio-go stops reporting when the context ends; keys it never answered for
			// are failures, not successes. Keys it answered for before keep their answer.
			if !answered[key] {
				failed[key] = fmt.Errorf("no answer from S3 (%v)", ctx.Err())
			}
		}
		for _, i := range idx {
			l := rows[i]
			if err, bad := failed[l.entry.ObjectPath]; bad {
				res.Failures = append(res.Failures, ObjectFailure{FileID: l.entry.FileID, Bucket: bucket,
					ObjectPath: l.entry.ObjectPath, Error: err.Error()})
				continue
			}
			gone = append(gone, l)
		}
	}
	return gone
}

// minPart is the fewest keys worth a request of their own: smaller batches go in one.
const minPart = 50

// multiDelete removes keys from bucket with multi-delete requests, up to s3Parallel at once:
// an S3 server works through the keys of one request in turn, so a large batch finishes
// sooner split over a few concurrent requests.
func (r *Reaper) multiDelete(ctx context.Context, bucket string, keys []string) (answered, missing map[string]bool, failed map[string]error) {
	answered, missing, failed = map[string]bool{}, map[string]bool{}, map[string]error{}
	part := max(minPart, (len(keys)+r.s3Parallel-1)/r.s3Parallel)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for start := 0; start < len(keys); start += part {
		chunk := keys[start:min(start+part, len(keys))]
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch := make(chan minio.ObjectInfo, len(chunk))
			for _, k := range chunk {
				ch <- minio.ObjectInfo{Key: k}
			}
			close(ch)
			for out := range r.s3.RemoveObjectsWithResult(ctx, bucket, ch, minio.RemoveObjectsOptions{}) {
				mu.Lock()
				answered[out.ObjectName] = true
				switch {
				case out.Err == nil:
				case isMissing(out.Err):
					missing[out.ObjectName] = true
				default:
					failed[out.ObjectName] = out.Err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return answered, missing, failed
}

// isMissing reports an S3 error that means the object (or its bucket) does not exist.
func isMissing(err error) bool {
	if err == nil {
		return false
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		switch resp.Code {
		case "NoSuchKey", "NoSuchBucket", "NotFound":
			return true
		}
	}
	return false
}
