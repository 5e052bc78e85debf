package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
)

// Step names where a Hook is called: StepExporting in the middle of the export stream, the
// others right after the manifest recorded that state.
const (
	StepExporting = "exporting"
	StepExported  = string(StateExported)
	StepVerified  = string(StateVerified)
	StepDetached  = string(StateDetached)
	StepDropped   = string(StateDropped)
	// StepDetachedUnrecorded is between DETACH ... CONCURRENTLY and the manifest's update
	// (that DETACH cannot share a transaction with it).
	StepDetachedUnrecorded = "detached_unrecorded"
)

// Hook is called at named steps; tests use it to pause, kill or cancel the archiver there.
type Hook func(ctx context.Context, step string, e *Entry)

// ObjectStore is the part of the S3 client (*minio.Client) the archiver uses.
type ObjectStore interface {
	BucketExists(ctx context.Context, bucket string) (bool, error)
	MakeBucket(ctx context.Context, bucket string, opts minio.MakeBucketOptions) error
	PutObject(ctx context.Context, bucket, key string, r io.Reader, size int64, opts minio.PutObjectOptions) (minio.UploadInfo, error)
	GetObject(ctx context.Context, bucket, key string, opts minio.GetObjectOptions) (*minio.Object, error)
	RemoveIncompleteUpload(ctx context.Context, bucket, key string) error
	StatObject(ctx context.Context, bucket, key string, opts minio.StatObjectOptions) (minio.ObjectInfo, error)
}

// Archiver moves partitions. It is safe to run from several nodes at once: a partition is
// moved only under its lock (lockPartition), which a second mover waits for and then skips;
// each manifest transition is also conditional on the state it read.
type Archiver struct {
	db   *pgxpool.Pool
	s3   ObjectStore
	cfg  Config
	now  func() time.Time
	log  *slog.Logger
	hook Hook
}

// New returns an Archiver; cfg is defaulted and validated.
func New(db *pgxpool.Pool, s3 ObjectStore, cfg Config, now func() time.Time, log *slog.Logger) (*Archiver, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Archiver{db: db, s3: s3, cfg: cfg, now: now, log: log}, nil
}

// SetHook installs a test hook; call before Run.
func (a *Archiver) SetHook(h Hook) { a.hook = h }

// Options are one run's overrides.
type Options struct {
	DryRun        bool
	MaxPartitions int      // 0: config
	Tables        []string // empty: every configured table
	RunID         int64    // the job run, recorded in the manifest; 0: none
}

// Item is one partition in a run's result.
type Item struct {
	Table     string `json:"table"`
	Partition string `json:"partition"`
	From      string `json:"from"`
	To        string `json:"to"`
	// Action: "archived" (dropped), "kept_detached", "would_archive" (dry run), "resumed"
	// prefix for work a previous run left, "skipped" with Reason.
	Action    string `json:"action"`
	State     State  `json:"state,omitempty"`
	Object    string `json:"object,omitempty"`
	Rows      int64  `json:"rows,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"`
	EstRows   int64  `json:"est_rows,omitempty"`
	DiskBytes int64  `json:"disk_bytes,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Result is a run's report.
type Result struct {
	DryRun bool `json:"dry_run"`
	// FirstRun: a dry run because this is a new deployment's first (see first_run_dry_run).
	FirstRun bool `json:"first_run,omitempty"`
	// Drop: archived partitions are dropped from Postgres once verified (config drop).
	Drop  bool   `json:"drop"`
	Items []Item `json:"items"`
	// Capped: more partitions were due than max_partitions allowed; the next run takes them.
	Capped bool     `json:"capped,omitempty"`
	Errors []string `json:"errors,omitempty"`
}

// Run archives what is due, resuming unfinished moves first. Per-partition failures are in
// the result and in the returned error, joined; AllRefused tells whether a retry could help.
func (a *Archiver) Run(ctx context.Context, opts Options) (Result, error) {
	res := Result{DryRun: opts.DryRun, Drop: *a.cfg.Drop, Items: []Item{}}
	budget := a.cfg.MaxPartitions
	if opts.MaxPartitions > 0 {
		budget = opts.MaxPartitions
	}
	tables := a.cfg.Tables
	if len(opts.Tables) > 0 {
		tables = nil
		for _, name := range opts.Tables {
			tc, ok := a.cfg.table(name)
			if !ok {
				return res, fmt.Errorf("%w: table %s is not in handlers.partition_archive.tables", ErrRefused, name)
			}
			tables = append(tables, tc)
		}
	}
	// A dry run without S3 (config check's preview) lists from Postgres alone.
	if a.s3 == nil && !opts.DryRun {
		return res, errors.New("partition_archive needs s3.endpoint")
	}
	if err := a.ensureBucket(ctx, opts.DryRun); err != nil {
		return res, err
	}
	var errs []error
	for _, tc := range tables {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		n, err := a.runTable(ctx, tc, opts, budget, &res)
		budget -= n
		if err != nil {
			errs = append(errs, err)
			res.Errors = append(res.Errors, err.Error())
		}
	}
	return res, errors.Join(errs...)
}

// AllRefused reports whether err is made only of ErrRefused failures (a table that is not
// range-partitioned by time, a partition in conflict): retrying the run cannot fix them.
func AllRefused(err error) bool {
	if err == nil {
		return false
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !AllRefused(e) {
				return false
			}
		}
		return true
	}
	return errors.Is(err, ErrRefused)
}

func (a *Archiver) ensureBucket(ctx context.Context, dryRun bool) error {
	if a.s3 == nil {
		return nil // dry run only (see Run)
	}
	ok, err := a.s3.BucketExists(ctx, a.cfg.Bucket)
	if err != nil {
		return fmt.Errorf("check bucket %s: %w", a.cfg.Bucket, err)
	}
	if ok || dryRun {
		return nil
	}
	if err := a.s3.MakeBucket(ctx, a.cfg.Bucket, minio.MakeBucketOptions{}); err != nil {
		if ok, _ := a.s3.BucketExists(ctx, a.cfg.Bucket); ok {
			return nil // another node made it
		}
		return fmt.Errorf("make bucket %s: %w", a.cfg.Bucket, err)
	}
	return nil
}

// runTable does one table's work within budget and returns how much of it it used.
func (a *Archiver) runTable(ctx context.Context, tc TableConfig, opts Options, budget int, res *Result) (int, error) {
	p, err := lookupParent(ctx, a.db, tc.Table)
	if err != nil {
		return 0, err
	}
	loc, _ := time.LoadLocation(a.cfg.TimeZone) // validated
	now := a.now().In(loc)
	current := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, loc)
	cutoff := current.AddDate(0, -tc.HotMonths, 0)

	used := 0
	var errs []error
	// First what earlier runs left part-way: a verified export waits to be detached and dropped.
	open, err := unfinished(ctx, a.db, p, *a.cfg.Drop)
	if err != nil {
		return 0, err
	}
	inManifest := map[string]bool{}
	for _, e := range open {
		inManifest[e.Partition] = true
		if used >= budget {
			res.Capped = true
			break
		}
		used++
		item := Item{Table: tc.Table, Partition: e.Partition, From: e.RangeFrom, To: e.RangeTo, Action: "resume", State: e.State}
		if opts.DryRun {
			item.Action = "would_resume"
			res.Items = append(res.Items, item)
			continue
		}
		lk, err := a.lockPartition(ctx, p, e.Partition)
		if err != nil {
			item = lockFailed(item, err, &errs)
			res.Items = append(res.Items, item)
			continue
		}
		// Re-read under the lock: the run that held it may have moved the row on.
		fresh, err := getEntry(ctx, a.db, p.Schema, p.Name, e.Partition)
		switch {
		case err != nil:
			item.Action, item.Error = "resume_failed", err.Error()
			errs = append(errs, err)
		case !slices.Contains(openStates(*a.cfg.Drop), fresh.State):
			item.Action, item.State, item.Object = "skipped", fresh.State, fresh.ObjectKey
			item.Reason = "another run finished it meanwhile"
		default:
			a.log.InfoContext(ctx, "resuming archive", "table", tc.Table, "partition", e.Partition, "state", fresh.State)
			item, err = a.move(ctx, p, fresh, item, lk)
			if err != nil {
				errs = append(errs, err)
			}
		}
		lk.release(ctx)
		res.Items = append(res.Items, item)
	}

	parts, err := listPartitions(ctx, a.db, p)
	if err != nil {
		return used, errors.Join(append(errs, err)...)
	}
	type candidate struct {
		part partition
		to   time.Time
	}
	var due []candidate
	for _, c := range parts {
		if inManifest[c.Name] {
			continue
		}
		item := Item{Table: tc.Table, Partition: c.Name, From: c.From, To: c.To, EstRows: c.EstRows, DiskBytes: c.Bytes, Action: "skipped"}
		switch {
		case c.Bound == "DEFAULT":
			continue // never archived, not even reported: it is the catch-all
		case c.Partitioned:
			item.Reason = "sub-partitioned"
		case c.From == "" || c.To == "":
			item.Reason = "bound is not FROM (value) TO (value): " + c.Bound
		}
		if item.Reason != "" {
			res.Items = append(res.Items, item)
			continue
		}
		to, err := parseBound(p.KeyType, c.To, loc)
		if err != nil {
			item.Reason = err.Error()
			res.Items = append(res.Items, item)
			continue
		}
		if to.After(cutoff) {
			continue // hot (or current, or future): not a candidate, not worth a line
		}
		due = append(due, candidate{c, to})
	}
	slices.SortFunc(due, func(x, y candidate) int { return x.to.Compare(y.to) })

	for _, c := range due {
		item := Item{Table: tc.Table, Partition: c.part.Name, From: c.part.From, To: c.part.To,
			EstRows: c.part.EstRows, DiskBytes: c.part.Bytes}
		key, err := a.objectKey(p, c.part.Name)
		if err != nil {
			item.Action, item.Reason = "skipped", err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", c.part.Name, err))
			res.Items = append(res.Items, item)
			continue
		}
		prior, err := getEntry(ctx, a.db, p.Schema, p.Name, c.part.Name)
		switch {
		case err == nil && slices.Contains(openStates(*a.cfg.Drop), prior.State):
			// Claimed since this run read the manifest: another mover has it.
			item.Action, item.State, item.Object = "skipped", prior.State, prior.ObjectKey
			item.Reason = errLocked.Error()
			res.Items = append(res.Items, item)
			continue
		case err == nil:
			// Restored, conflicted or archived before and re-created: an operator's call.
			item.Action, item.State, item.Object = "skipped", prior.State, prior.ObjectKey
			item.Reason = fmt.Sprintf("manifest says %s; archive it again only after deciding what to do with %s/%s",
				prior.State, prior.Bucket, prior.ObjectKey)
			res.Items = append(res.Items, item)
			continue
		case !errors.Is(err, ErrNoEntry):
			errs = append(errs, err)
			continue
		}
		if used >= budget {
			res.Capped = true
			break
		}
		used++
		item.Object = key
		if opts.DryRun {
			item.Action = "would_archive"
			a.log.InfoContext(ctx, "would archive", "table", tc.Table, "partition", c.part.Name,
				"est_rows", c.part.EstRows, "disk_bytes", c.part.Bytes, "drop", *a.cfg.Drop)
			res.Items = append(res.Items, item)
			continue
		}
		lk, err := a.lockPartition(ctx, p, c.part.Name)
		if err != nil {
			item = lockFailed(item, err, &errs)
			res.Items = append(res.Items, item)
			continue
		}
		e, err := a.claim(ctx, p, c.part, key, opts.RunID)
		if err != nil {
			item.Action, item.Error = "failed", err.Error()
			errs = append(errs, err)
		} else if item, err = a.move(ctx, p, e, item, lk); err != nil {
			errs = append(errs, err)
		}
		lk.release(ctx)
		res.Items = append(res.Items, item)
	}
	return used, errors.Join(errs...)
}

// lockFailed reports a partition whose lock this run did not get: another mover holds it (a
// skip, not a failure), or Postgres failed.
func lockFailed(item Item, err error, errs *[]error) Item {
	if errors.Is(err, errLocked) {
		item.Action, item.Reason = "skipped", err.Error()
		return item
	}
	item.Action, item.Error = "failed", err.Error()
	*errs = append(*errs, fmt.Errorf("%s: %w", item.Partition, err))
	return item
}

// openStates are the states a run resumes.
func openStates(drop bool) []State {
	states := []State{StateExporting, StateExported, StateVerified}
	if drop {
		states = append(states, StateDetached)
	}
	return states
}

func (a *Archiver) claim(ctx context.Context, p parent, c partition, key string, runID int64) (*Entry, error) {
	cols, err := tableColumns(ctx, a.db, c.Schema, c.Name)
	if err != nil {
		return nil, err
	}
	e := &Entry{ParentSchema: p.Schema, ParentTable: p.Name, Partition: c.Name, KeyColumn: p.KeyColumn,
		KeyType: p.KeyType, RangeFrom: c.From, RangeTo: c.To, Columns: cols, Bucket: a.cfg.Bucket,
		ObjectKey: key, Format: Format}
	if c.Schema != p.Schema {
		return nil, fmt.Errorf("%w: partition %s.%s lives outside its parent's schema %s", ErrRefused, c.Schema, c.Name, p.Schema)
	}
	if runID > 0 {
		e.RunID = &runID
	}
	return claimEntry(ctx, a.db, e)
}

// maxExportAttempts bounds re-exports of a partition whose read-back or re-check disagreed.
const maxExportAttempts = 3

// move runs e's state machine to its end for this config, holding the partition's lock.
func (a *Archiver) move(ctx context.Context, p parent, e *Entry, item Item, lk *partitionLock) (Item, error) {
	if item.Action == "" {
		item.Action = "archived"
	}
	item.Object = e.ObjectKey
	fail := func(err error) (Item, error) {
		item.State, item.Error = e.State, err.Error()
		if item.Action == "resume" {
			item.Action = "resume_failed"
		} else {
			item.Action = "failed"
		}
		a.log.ErrorContext(ctx, "archive step failed", "partition", e.Name(), "state", e.State, "err", err)
		return item, fmt.Errorf("%s: %w", e.Partition, err)
	}
	for {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		var err error
		switch e.State {
		case StateExporting, StateExported, StateVerified:
			// A mover whose lock session died (reaped while idle through a long export) no
			// longer holds the partition: another may be moving it. It stops here.
			err = lk.alive(ctx)
		}
		if err != nil {
			return fail(err)
		}
		switch e.State {
		case StateExporting:
			var st exportStats
			if err = a.startExport(ctx, e, lk); err == nil {
				err = a.refreshColumns(ctx, e)
			}
			if err == nil {
				st, err = a.export(ctx, e)
			}
			if err == nil {
				err = lk.alive(ctx)
			}
			if err == nil {
				err = recordExport(ctx, a.db, e, st)
			}
		case StateExported:
			err = a.verify(ctx, e)
		case StateVerified:
			err = a.detach(ctx, p, e)
		case StateDetached:
			if !*a.cfg.Drop {
				item.Action, item.State = "kept_detached", e.State
				return a.finish(item, e), nil
			}
			err = a.drop(ctx, e, lk)
		case StateDropped:
			item.State = e.State
			if item.Action == "resume" {
				item.Action = "archived"
			}
			return a.finish(item, e), nil
		default:
			item.Action, item.State, item.Reason = "skipped", e.State, e.Error
			return item, nil
		}
		if err != nil {
			return fail(err)
		}
		a.log.InfoContext(ctx, "archive step done", "partition", e.Name(), "state", e.State, "object", e.ObjectKey)
		if a.hook != nil {
			a.hook(ctx, string(e.State), e)
		}
	}
}

func (a *Archiver) finish(item Item, e *Entry) Item {
	item.Object = e.ObjectKey // an export started again wrote a key of its own
	if e.Rows != nil {
		item.Rows = *e.Rows
	}
	if e.Bytes != nil {
		item.Bytes = *e.Bytes
	}
	return item
}

// verify reads the object back. A mismatch sends the partition back to exporting (same
// key), up to maxExportAttempts; then it is a conflict for an operator.
func (a *Archiver) verify(ctx context.Context, e *Entry) error {
	got, err := a.readBack(ctx, e, nil)
	if err != nil {
		return err
	}
	if err := compare(e, got, true); err != nil {
		return a.reexport(ctx, e, fmt.Errorf("read-back of %s: %w", e.ObjectKey, err))
	}
	if err := a.putSidecar(ctx, e); err != nil {
		return err
	}
	return recordVerified(ctx, a.db, e, got.ETag)
}

func (a *Archiver) reexport(ctx context.Context, e *Entry, why error) error {
	if e.Attempts >= maxExportAttempts {
		if err := setState(ctx, a.db, e, StateConflict, why.Error()); err != nil {
			return err
		}
		return fmt.Errorf("%w: %v after %d exports; left in conflict", ErrRefused, why, e.Attempts)
	}
	a.log.WarnContext(ctx, "archive does not match, exporting again", "partition", e.Name(), "err", why)
	return setState(ctx, a.db, e, StateExporting, why.Error())
}

// detach takes the partition off its parent. CONCURRENTLY (no ACCESS EXCLUSIVE lock on the
// parent) is not allowed when the parent has a DEFAULT partition; then a plain DETACH under
// lock_timeout, in one transaction with the manifest's update.
func (a *Archiver) detach(ctx context.Context, p parent, e *Entry) error {
	exists, attached, pending, err := tableState(ctx, a.db, p, e.ParentSchema, e.Partition)
	if err != nil {
		return err
	}
	if !exists {
		return a.reexport(ctx, e, errors.New("the partition vanished after its export was verified"))
	}
	parentID := p.ident()
	if !attached {
		return setState(ctx, a.db, e, StateDetached, "") // a killed run detached it, or an operator did
	}
	if pending || !p.HasDefault {
		stmt := fmt.Sprintf(`ALTER TABLE %s DETACH PARTITION %s CONCURRENTLY`, parentID, e.ident())
		if pending {
			// A killed DETACH CONCURRENTLY leaves the partition half-detached; only FINALIZE ends it.
			stmt = fmt.Sprintf(`ALTER TABLE %s DETACH PARTITION %s FINALIZE`, parentID, e.ident())
		}
		err := a.withLockRetry(ctx, func() error {
			c, err := a.db.Acquire(ctx)
			if err != nil {
				return err
			}
			defer c.Release()
			if _, err := c.Exec(ctx, `SELECT set_config('lock_timeout', $1, false)`, a.lockTimeout()); err != nil {
				return err
			}
			_, err = c.Exec(ctx, stmt)
			// The connection goes back to the pool: put lock_timeout back as it was.
			if _, rerr := c.Exec(context.WithoutCancel(ctx), `RESET lock_timeout`); rerr != nil {
				c.Conn().Close(context.WithoutCancel(ctx)) //nolint:errcheck // dropped from the pool either way
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("detach %s: %w", e.Name(), err)
		}
		if a.hook != nil {
			a.hook(ctx, StepDetachedUnrecorded, e)
		}
		return setState(ctx, a.db, e, StateDetached, "")
	}
	return a.withLockRetry(ctx, func() error {
		tx, err := a.db.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, a.lockTimeout()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s DETACH PARTITION %s`, parentID, e.ident())); err != nil {
			return fmt.Errorf("detach %s: %w", e.Name(), err)
		}
		st := e.State
		if err := setState(ctx, tx, e, StateDetached, ""); err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			e.State = st
			return fmt.Errorf("detach %s: commit: %w", e.Name(), err)
		}
		return nil
	})
}

// drop re-reads the detached table under an ACCESS EXCLUSIVE lock and drops it only if it
// still holds exactly what the archive holds (same columns and types, rows and content
// checksum) and the object is still the one verified (HEAD: size and ETag); the checks, the
// DROP and the manifest's update commit together, on the partition lock's connection. A table
// or object that changed after the export goes back to exporting.
func (a *Archiver) drop(ctx context.Context, e *Entry, lk *partitionLock) error {
	var changed error
	err := a.withLockRetry(ctx, func() error {
		changed = nil
		tx, err := lk.conn.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, a.lockTimeout()); err != nil {
			return err
		}
		var exists, attached bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL,
			EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass($1))`, e.ident()).Scan(&exists, &attached); err != nil {
			return fmt.Errorf("look up %s: %w", e.Name(), err)
		}
		if !exists {
			// Someone dropped it by hand; the verified archive is all there is now.
			return setStateCommit(ctx, tx, e, StateDropped, "the detached table was already gone")
		}
		if attached {
			return fmt.Errorf("%w: %s was attached again after the job detached it; not dropping", ErrRefused, e.Name())
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`LOCK TABLE %s IN ACCESS EXCLUSIVE MODE`, e.ident())); err != nil {
			return fmt.Errorf("lock %s: %w", e.Name(), err)
		}
		if err := pinSession(ctx, tx); err != nil {
			return err
		}
		if err := columnsUnchanged(ctx, tx, e); err != nil {
			if !errors.Is(err, errMismatch) {
				return err
			}
			changed = fmt.Errorf("%s changed after its export: %w", e.Name(), err)
			return nil
		}
		rows := newRowHasher()
		if _, err := tx.Conn().PgConn().CopyTo(ctx, rows, copyOutSQL(e)); err != nil {
			return fmt.Errorf("re-read %s: %w", e.Name(), err)
		}
		got := exportStats{Rows: rows.Rows(), Checksum: rows.Checksum()}
		if err := compare(e, got, false); err != nil {
			changed = fmt.Errorf("%s changed after its export: %w", e.Name(), err)
			return nil
		}
		if err := a.objectUnchanged(ctx, e); err != nil {
			if !errors.Is(err, errMismatch) {
				return err
			}
			changed = fmt.Errorf("the archive of %s changed after its verify: %w", e.Name(), err)
			return nil
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`DROP TABLE %s`, e.ident())); err != nil {
			return fmt.Errorf("drop %s: %w", e.Name(), err)
		}
		return setStateCommit(ctx, tx, e, StateDropped, "")
	})
	if err != nil {
		return err
	}
	if changed != nil {
		return a.reexport(ctx, e, changed)
	}
	return nil
}

type committer interface {
	querier
	Commit(ctx context.Context) error
}

func setStateCommit(ctx context.Context, tx committer, e *Entry, to State, note string) error {
	st := e.State
	if err := setState(ctx, tx, e, to, note); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		e.State = st
		return fmt.Errorf("manifest %s: commit: %w", e.Name(), err)
	}
	return nil
}

func (a *Archiver) lockTimeout() string { return fmt.Sprintf("%dms", a.cfg.LockTimeout.Milliseconds()) }

func (a *Archiver) withLockRetry(ctx context.Context, fn func() error) error {
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := fn()
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55P03" || attempt >= a.cfg.LockRetries {
			return err
		}
		a.log.WarnContext(ctx, "lock timeout, retrying", "attempt", attempt+1, "backoff", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (after lock timeout: %v)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}
