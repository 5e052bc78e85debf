package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatplat/job-service/archive"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/sqlident"
)

// PartitionArchiveKind is the job kind of PartitionArchive.
const PartitionArchiveKind = "partition_archive"

// PartitionArchivePolicy is the job's default run policy: daily at 04:30, after the night's
// other maintenance; a month streams for minutes, so a long timeout (a retry resumes where a
// timed-out attempt stopped anyway).
func PartitionArchivePolicy() job.Spec {
	return job.Spec{Schedule: "0 30 4 * * *", Timeout: 6 * time.Hour,
		Misfire: job.MisfireFireOnce, MisfireBound: 12 * time.Hour}
}

// PartitionArchiveConfig configures partition_archive (handlers.partition_archive); the keys
// are archive.Config's.
type PartitionArchiveConfig = archive.Config

// PartitionArchiveArgs are the run parameters; unset fields come from config.
type PartitionArchiveArgs struct {
	// DryRun lists what would move and moves nothing.
	DryRun bool `json:"dry_run,omitempty"`
	// MaxPartitions overrides the per-run cap.
	MaxPartitions *int `json:"max_partitions,omitempty"`
	// Tables narrows the run to some of the configured tables.
	Tables []string `json:"tables,omitempty"`
}

// Validate refuses a cap outside 1..1000 and bad table names.
func (a *PartitionArchiveArgs) Validate() error {
	if a.MaxPartitions != nil && (*a.MaxPartitions < 1 || *a.MaxPartitions > 1000) {
		return fmt.Errorf("max_partitions %d is outside 1..1000", *a.MaxPartitions)
	}
	for _, t := range a.Tables {
		if err := sqlident.ValidateTable(t); err != nil {
			return err
		}
	}
	return nil
}

// PartitionArchive moves monthly partitions older than their table's hot period to S3
// (export, verify, detach, drop); the mechanics and their crash safety are in archive/.
type PartitionArchive struct {
	db  *pgxpool.Pool
	s3  archive.ObjectStore
	cfg archive.Config
	now func() time.Time
	log *slog.Logger
}

// NewPartitionArchive returns the handler. s3 may be nil on a node without S3: runs then fail.
func NewPartitionArchive(db *pgxpool.Pool, s3 archive.ObjectStore, cfg PartitionArchiveConfig, now func() time.Time, log *slog.Logger) (*PartitionArchive, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("partition_archive config: %w", err)
	}
	return &PartitionArchive{db: db, s3: s3, cfg: cfg, now: now, log: log}, nil
}

// Kind implements Handler.
func (h *PartitionArchive) Kind() string { return PartitionArchiveKind }

// PartitionArchiveSkipped is the result of a shard other than the first: one run moves
// partitions in one shard, so that no two shards ever export, detach or drop the same
// partition at once (the manifest's steps assume one mover per partition).
type PartitionArchiveSkipped struct {
	Skipped string `json:"skipped"`
}

// Run implements Handler.
func (h *PartitionArchive) Run(ctx context.Context, run *job.Run[PartitionArchiveArgs]) (any, error) {
	if run.Shard.Index > 0 {
		h.log.WarnContext(ctx, "partition_archive runs in shard 0 only; this shard does nothing",
			"shard", run.Shard.Index, "shards", run.Shard.Total)
		return PartitionArchiveSkipped{Skipped: fmt.Sprintf("shard %d of %d: partition_archive moves partitions in shard 0 only",
			run.Shard.Index, run.Shard.Total)}, nil
	}
	if h.s3 == nil {
		return nil, job.Discard("no s3", errors.New("partition_archive needs s3.endpoint"))
	}
	a, err := archive.New(h.db, h.s3, h.cfg, h.now, h.log)
	if err != nil {
		return nil, job.Discard("config", err)
	}
	opts := archive.Options{DryRun: run.Args.DryRun, Tables: run.Args.Tables, RunID: run.RunID}
	if run.Args.MaxPartitions != nil {
		opts.MaxPartitions = *run.Args.MaxPartitions
	}
	// A new deployment's first run shows what the job would archive and drop, with sizes,
	// before anything leaves Postgres; the next run acts. A dry run asked for (dry_run) on a
	// new deployment counts as that preview.
	first := false
	if *h.cfg.FirstRunDryRun {
		if first, err = archive.NewDeployment(ctx, h.db); err != nil {
			return nil, err
		}
		opts.DryRun = opts.DryRun || first
	}
	res, err := a.Run(ctx, opts)
	if first {
		res.FirstRun = true
		h.log.InfoContext(ctx, "partition_archive: first run of this deployment, a dry run; the next run archives what it lists",
			"drop", res.Drop, "partitions", len(res.Items))
		if err == nil {
			err = archive.RecordPreview(ctx, h.db, run.RunID, res)
		}
	}
	if archive.AllRefused(err) {
		// A table that is not range-partitioned by time, or a partition left in conflict, does
		// not fix itself on retry; the alert tells an operator. Anything else (S3 or Postgres
		// down, a lock timeout) is retried, and the retry resumes where this attempt stopped.
		return res, job.Discard("archive refused", err)
	}
	return res, err
}
