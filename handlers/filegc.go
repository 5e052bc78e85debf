package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatplat/job-service/filereap"
	"github.com/chatplat/job-service/job"
)

// FileGCKind is the job kind of FileGC, the daily sweep.
const FileGCKind = "file_gc"

// FileGCPolicy is file_gc's default run policy: the design's daily 04:00 sharding broadcast
// over 3 shards (shard i takes the files with id % 3 = i).
func FileGCPolicy() job.Spec {
	return job.Spec{Schedule: "0 0 4 * * *", Shards: 3, Timeout: time.Hour,
		Misfire: job.MisfireFireOnce, MisfireBound: 6 * time.Hour}
}

// FileGCConfig configures the daily sweep; File is shared with the event-driven GC.
type FileGCConfig struct {
	File filereap.FileTable `yaml:"file_table"`
	// Grace: a row deleted by its user (status=2, ref_count=0) less than this long ago is left
	// alone; the file service may still re-reference it.
	Grace time.Duration `yaml:"grace"`
	// PageSize is how many candidate ids one keyset page reads.
	PageSize int `yaml:"page_size"`
	// BatchSize is how many files one transaction locks and one S3 multi-delete removes
	// (S3 takes at most 1000 keys per request).
	BatchSize int `yaml:"batch_size"`
	// MaxDeletes caps the files one run (one shard) removes; the run then stops, capped.
	MaxDeletes int `yaml:"max_deletes"`
	// CheckMissing stats each object before deleting so missing objects are counted and their
	// bytes not reported as freed (S3 multi-delete does not tell).
	CheckMissing *bool `yaml:"check_missing"`
	// ReaperOptions: lock_timeout, s3_timeout (default 1m), s3_parallel.
	filereap.ReaperOptions `yaml:",inline"`
}

// WithDefaults fills unset fields.
func (c FileGCConfig) WithDefaults() FileGCConfig {
	c.File = c.File.WithDefaults()
	if c.Grace == 0 {
		c.Grace = 24 * time.Hour
	}
	if c.PageSize == 0 {
		c.PageSize = 1000
	}
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.MaxDeletes == 0 {
		c.MaxDeletes = 100000
	}
	if c.CheckMissing == nil {
		on := true
		c.CheckMissing = &on
	}
	c.ReaperOptions = c.ReaperOptions.WithDefaults(time.Minute)
	return c
}

// Validate names the first bad key.
func (c FileGCConfig) Validate() error {
	if err := c.File.Validate(); err != nil {
		return fmt.Errorf("file_table.%w", err)
	}
	if err := filereap.ValidateGrace("grace", c.Grace, time.Minute); err != nil {
		return err
	}
	switch {
	case c.PageSize < 1 || c.PageSize > 100000:
		return fmt.Errorf("page_size: %d is outside 1..100000", c.PageSize)
	case c.BatchSize < 1 || c.BatchSize > 1000:
		return fmt.Errorf("batch_size: %d is outside 1..1000", c.BatchSize)
	case c.MaxDeletes < 1:
		return fmt.Errorf("max_deletes: %d is below 1", c.MaxDeletes)
	}
	return c.ReaperOptions.Validate()
}

// FileGCArgs are the run parameters of file_gc; unset fields come from config.
type FileGCArgs struct {
	// DryRun reports what would be removed and removes nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// MaxDeletes overrides the per-run cap.
	MaxDeletes *int `json:"max_deletes,omitempty"`
}

// Validate refuses a cap below 1.
func (a *FileGCArgs) Validate() error {
	if a.MaxDeletes != nil && *a.MaxDeletes < 1 {
		return fmt.Errorf("max_deletes %d is below 1", *a.MaxDeletes)
	}
	return nil
}

// FileGC is the daily sweep: it removes the objects and rows of files their users deleted
// (status=2) that nothing references (ref_count=0) and that have not changed for the grace
// period. It is the safety net under the event-driven GC, which removes most files within
// minutes. Shard i of n takes the ids with id % n = i.
type FileGC struct {
	db     *pgxpool.Pool
	cfg    FileGCConfig
	sql    filereap.SQL
	reaper *filereap.Reaper
	now    func() time.Time
	log    *slog.Logger

	// afterScan, when set (tests), runs between reading a page of candidates and locking them.
	afterScan func(ctx context.Context, ids []int64)
}

// NewFileGC returns the file_gc handler. s3 may be nil on a node without S3; runs then fail.
func NewFileGC(db *pgxpool.Pool, s3 filereap.ObjectStore, cfg FileGCConfig, now func() time.Time, log *slog.Logger) (*FileGC, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("file_gc config: %w", err)
	}
	return &FileGC{db: db, cfg: cfg, sql: cfg.File.Quoted(), now: now, log: log,
		reaper: filereap.NewReaper(db, s3, cfg.File, cfg.ReaperOptions, log)}, nil
}

// Kind implements Handler.
func (g *FileGC) Kind() string { return FileGCKind }

// FileGCResult is the run's result JSON.
type FileGCResult struct {
	Shard          string                   `json:"shard"`
	DryRun         bool                     `json:"dry_run"`
	Cutoff         time.Time                `json:"cutoff"` // rows updated after this were not considered
	Scanned        int                      `json:"scanned"`
	DeletedObjects int                      `json:"deleted_objects"` // objects we removed (dry run: would remove)
	DeletedRows    int                      `json:"deleted_rows"`
	BytesFreed     int64                    `json:"bytes_freed"`
	MissingObjects int                      `json:"missing_objects"` // rows whose object was already gone
	SharedObjects  int                      `json:"shared_objects"`  // rows removed whose object another row names: kept
	Resumed        int                      `json:"resumed"`         // tombstones an interrupted run left, finished
	Survived       int                      `json:"survived"`        // re-referenced or changed between scan and delete
	Failures       int                      `json:"failures"`
	FailureSamples []filereap.ObjectFailure `json:"failure_samples,omitempty"`
	Capped         bool                     `json:"capped"`
	// Backlog is what the run left for the next: the shard's collectable rows older than the
	// cutoff and its tombstones, counted at the end (jobservice_filegc_backlog_files).
	Backlog       int64  `json:"backlog"`
	MaxDeletes    int    `json:"max_deletes"`
	StoppedReason string `json:"stopped_reason,omitempty"`
	// ObjectIndex names the index on the object columns (bucket, object_path) the shared-object
	// check of every batch relies on; empty when the table has none (IndexWarning then says
	// what to create).
	ObjectIndex  string `json:"object_index,omitempty"`
	IndexWarning string `json:"index_warning,omitempty"`
}

const maxFailureSamples = 20

// Run implements Handler.
func (g *FileGC) Run(ctx context.Context, run *job.Run[FileGCArgs]) (any, error) {
	shard := run.Envelope.Shard
	if shard.Total == 0 {
		shard = job.Shard{Index: 0, Total: 1}
	}
	maxDeletes := g.cfg.MaxDeletes
	if run.Args.MaxDeletes != nil {
		maxDeletes = *run.Args.MaxDeletes
	}
	res := FileGCResult{Shard: fmt.Sprintf("%d/%d", shard.Index, shard.Total), DryRun: run.Args.DryRun,
		Cutoff: g.now().Add(-g.cfg.Grace).UTC(), MaxDeletes: maxDeletes}
	s := g.sql
	page := fmt.Sprintf(`SELECT %s FROM %s WHERE %s AND %s < $1 AND %s > $2 AND mod(%s, $3) = $4 ORDER BY %s LIMIT $5`,
		s.ID, s.Table, s.Eligible(), s.UpdatedAt, s.ID, s.ID, s.ID)
	if err := g.checkObjectIndex(ctx, &res); err != nil {
		return res, err
	}
	if !run.Args.DryRun {
		if err := g.finishTombstones(ctx, run, shard, maxDeletes, &res); err != nil {
			return res, err
		}
	}
	last := int64(math.MinInt64)
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		rows, err := g.db.Query(ctx, page, res.Cutoff, last, shard.Total, shard.Index, g.cfg.PageSize)
		if err != nil {
			return res, fmt.Errorf("scan %s: %w", g.cfg.File.Table, err)
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return res, fmt.Errorf("scan %s: %w", g.cfg.File.Table, err)
		}
		if len(ids) == 0 {
			break
		}
		last = ids[len(ids)-1]
		res.Scanned += len(ids)
		if g.afterScan != nil {
			g.afterScan(ctx, ids)
		}
		for start := 0; start < len(ids) && !res.Capped; start += g.cfg.BatchSize {
			batch := ids[start:min(start+g.cfg.BatchSize, len(ids))]
			if err := g.reapBatch(ctx, run, batch, maxDeletes, &res); err != nil {
				return res, err
			}
		}
		if res.Capped {
			res.StoppedReason = fmt.Sprintf("max_deletes %d reached; the rest waits for the next run", maxDeletes)
			g.log.WarnContext(ctx, "file_gc stopped at max_deletes", "max_deletes", maxDeletes, "shard", res.Shard)
			break
		}
		if len(ids) < g.cfg.PageSize {
			break
		}
	}
	if !run.Args.DryRun {
		if err := g.countBacklog(ctx, shard, &res); err != nil {
			return res, err
		}
	}
	if res.Failures > 0 {
		// Retrying the shard is harmless (collected rows are gone) and may get past a
		// transient S3 error; a persistent one ends the run failed, which alerts.
		return res, fmt.Errorf("%d objects could not be deleted (first: %s/%s: %s); their rows are kept",
			res.Failures, res.FailureSamples[0].Bucket, res.FailureSamples[0].ObjectPath, res.FailureSamples[0].Error)
	}
	return res, nil
}

func (g *FileGC) reapBatch(ctx context.Context, run *job.Run[FileGCArgs], batch []int64, maxDeletes int, res *FileGCResult) error {
	done := res.DeletedRows
	if run.Args.DryRun {
		done = res.DeletedObjects + res.MissingObjects
	}
	remaining := maxDeletes - done
	if remaining <= 0 {
		res.Capped = true
		return nil
	}
	cands := make([]filereap.Candidate, len(batch))
	for i, id := range batch {
		cands[i] = filereap.Candidate{ID: id, NotAfter: res.Cutoff}
	}
	out, err := g.reaper.Reap(ctx, cands, filereap.ReapOptions{DryRun: run.Args.DryRun, CheckMissing: *g.cfg.CheckMissing,
		Limit: remaining, Owner: tombstoneOwner(run), RunID: func(context.Context, pgx.Tx, *filereap.ReapResult) (int64, error) { return run.RunID, nil }})
	if err != nil {
		if errors.Is(err, filereap.ErrNoS3) {
			return job.Discard("no S3", err)
		}
		return fmt.Errorf("collect files %d..%d: %w", batch[0], batch[len(batch)-1], err)
	}
	for _, sk := range out.Skips {
		if sk.Reason == filereap.SkipCapped {
			res.Capped = true
		} else {
			res.Survived++
		}
	}
	for _, f := range out.Failures {
		res.Failures++
		if len(res.FailureSamples) < maxFailureSamples {
			res.FailureSamples = append(res.FailureSamples, f)
		}
	}
	if run.Args.DryRun {
		for _, e := range out.WouldRemove {
			if e.ObjectMissing {
				res.MissingObjects++
			} else {
				res.DeletedObjects++
				res.BytesFreed += e.Bytes
			}
		}
		return nil
	}
	res.DeletedRows += len(out.Removed)
	res.DeletedObjects += len(out.Removed) - out.Missing - out.Shared
	res.MissingObjects += out.Missing
	res.SharedObjects += out.Shared
	res.Resumed += out.Resumed
	res.BytesFreed += out.Bytes
	return nil
}

// objectIndexSQL finds a non-partial index of the file table that answers "which rows name
// this object": one leading with the path column, or with the bucket column then the path.
const objectIndexSQL = `
SELECT i.indexrelid::regclass::text
FROM pg_index i
JOIN pg_attribute a0 ON a0.attrelid = i.indrelid AND a0.attnum = i.indkey[0]
LEFT JOIN pg_attribute a1 ON a1.attrelid = i.indrelid AND a1.attnum = i.indkey[1]
WHERE i.indrelid = to_regclass($1) AND i.indpred IS NULL
	AND (a0.attname = $3 OR (a0.attname = $2 AND a1.attname = $3))
ORDER BY 1 LIMIT 1`

// checkObjectIndex looks for the index the reaper's shared-object check needs. Without it
// every batch (500 files) reads and hashes the whole file table: at a million candidates
// that is thousands of full scans of a table of millions of rows per run (BENCHMARKS.md,
// "Jobs at production volume"). The run goes on, slower, and says what to create.
func (g *FileGC) checkObjectIndex(ctx context.Context, res *FileGCResult) error {
	c := g.cfg.File.Columns
	rows, err := g.db.Query(ctx, objectIndexSQL, g.sql.Table, c.Bucket, c.ObjectPath)
	if err != nil {
		return fmt.Errorf("look for an index on %s(%s, %s): %w", g.cfg.File.Table, c.Bucket, c.ObjectPath, err)
	}
	name, err := pgx.CollectOneRow(rows, pgx.RowTo[string])
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		res.IndexWarning = fmt.Sprintf("no index on %s (%s, %s): every batch reads the whole table to find rows sharing "+
			"an object; create one: CREATE INDEX ON %s (%s, %s)", g.cfg.File.Table, c.Bucket, c.ObjectPath,
			g.sql.Table, g.sql.Bucket, g.sql.Path)
		g.log.WarnContext(ctx, "file_gc: missing index", "warning", res.IndexWarning)
	case err != nil:
		return fmt.Errorf("look for an index on %s(%s, %s): %w", g.cfg.File.Table, c.Bucket, c.ObjectPath, err)
	default:
		res.ObjectIndex = name
	}
	return nil
}

// countBacklog counts what the run leaves behind in its shard: collectable rows past the
// cutoff (nonzero after a capped run, or rows that survived) and tombstones. One scan of the
// partial index on the collectable rows per run.
func (g *FileGC) countBacklog(ctx context.Context, shard job.Shard, res *FileGCResult) error {
	s := g.sql
	err := g.db.QueryRow(ctx, fmt.Sprintf(`SELECT (SELECT count(*) FROM %s WHERE %s AND %s < $1 AND mod(%s, $2) = $3)
		+ (SELECT count(*) FROM gc_tombstones WHERE mod(file_id, $2) = $3)`, s.Table, s.Eligible(), s.UpdatedAt, s.ID),
		res.Cutoff, shard.Total, shard.Index).Scan(&res.Backlog)
	if err != nil {
		return fmt.Errorf("count the backlog of %s: %w", g.cfg.File.Table, err)
	}
	return nil
}
