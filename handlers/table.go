package handlers

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/redis/go-redis/v9"

	"github.com/chatplat/job-service/archive"
	"github.com/chatplat/job-service/filereap"
	"github.com/chatplat/job-service/job"
)

// Deps are what handlers are built from. Nil clients belong to systems this node does not
// reach: their handlers are still registered, and their runs fail saying what is missing.
type Deps struct {
	DB    *pgxpool.Pool
	Redis *redis.Client
	ES    *elasticsearch.Client
	Neo4j neo4j.DriverWithContext
	S3    filereap.ObjectStore
	Now   func() time.Time
	Log   *slog.Logger
}

// Table is every job kind this build runs, one row each: its kind, its config section (the
// type, whose WithDefaults and Validate apply), its default run policy and its constructor.
// Adding a job is its own file and one row here; config, config check, jobctl and the node
// all read this table.
func Table() []Row {
	return []Row{
		Define(DailyStatsKind, DailyStatsPolicy(), func(d Deps, c DailyStatsConfig) (job.Handler[DailyStatsArgs], error) {
			return NewDailyStats(d.DB, c, d.Now, d.Log)
		}),
		Define(PartitionKind, PartitionPolicy(), func(d Deps, c PartitionConfig) (job.Handler[PartitionArgs], error) {
			return NewPartition(d.DB, c, d.Now, d.Log)
		}),
		Define(GroupActivityKind, GroupActivityPolicy(), func(d Deps, c GroupActivityConfig) (job.Handler[GroupActivityArgs], error) {
			return NewGroupActivity(d.DB, c, d.Now, d.Log)
		}),
		Define(ESForceMergeKind, ESForceMergePolicy(), func(d Deps, c ESForceMergeConfig) (job.Handler[ESForceMergeArgs], error) {
			if d.ES == nil {
				d.Log.Warn("no elasticsearch.addresses in config; es_forcemerge runs will fail on this node")
			}
			return NewESForceMerge(d.ES, c, d.Now, d.Log)
		}),
		Define(FileGCKind, FileGCPolicy(), func(d Deps, c FileGCConfig) (job.Handler[FileGCArgs], error) {
			return NewFileGC(d.DB, d.S3, c, d.Now, d.Log)
		}),
		Define(GraphConsistencyKind, GraphConsistencyPolicy(), func(d Deps, c GraphConsistencyConfig) (job.Handler[GraphConsistencyArgs], error) {
			if d.Neo4j == nil {
				d.Log.Warn("no neo4j.uri in config; graph_consistency runs will fail on this node")
			}
			return NewGraphConsistency(d.DB, d.Neo4j, c, d.Now, d.Log)
		}),
		Define(TokenBlacklistKind, TokenBlacklistPolicy(), func(d Deps, c TokenBlacklistConfig) (job.Handler[TokenBlacklistArgs], error) {
			return NewTokenBlacklist(d.Redis, c, d.Now, d.Log)
		}),
		Define(MsgGapKind, MsgGapPolicy(), func(d Deps, c MsgGapConfig) (job.Handler[MsgGapArgs], error) {
			return NewMsgGap(d.DB, c, d.Now, d.Log)
		}),
		Define(PartitionArchiveKind, PartitionArchivePolicy(), func(d Deps, c PartitionArchiveConfig) (job.Handler[PartitionArchiveArgs], error) {
			s3, _ := d.S3.(archive.ObjectStore) // the node's *minio.Client; nil without s3.endpoint
			return NewPartitionArchive(d.DB, s3, c, d.Now, d.Log)
		}),
	}
}

// Row is one job kind of the Table: its job.Definition (what config needs) and how to build
// and register its handler.
type Row struct {
	job.Definition
	register func(reg *job.Registry, d Deps, section any) error
}

// Define builds a row: kind's handler takes args T and is configured by section C; policy is
// its default run policy; build makes the handler from the node's clients and the section
// (defaults filled and validated).
func Define[C job.Section[C], T any](kind string, policy job.Spec, build func(Deps, C) (job.Handler[T], error)) Row {
	return Row{
		Definition: job.Define[C, T](kind, policy),
		register: func(reg *job.Registry, d Deps, section any) error {
			c := job.SectionOf[C](map[string]any{kind: section}, kind)
			d.Log = d.Log.With("handler", kind)
			h, err := build(d, *c)
			if err != nil {
				return fmt.Errorf("build %s handler: %w", kind, err)
			}
			if h.Kind() != kind {
				return fmt.Errorf("handler of row %q says its kind is %q", kind, h.Kind())
			}
			job.Register(reg, h)
			return nil
		},
	}
}

// Definitions returns the table's job definitions, what config.Load needs.
func Definitions() []job.Definition {
	rows := Table()
	out := make([]job.Definition, len(rows))
	for i, r := range rows {
		out[i] = r.Definition
	}
	return out
}

// Kinds returns the job kinds of the table, in its order.
func Kinds() []string {
	rows := Table()
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Kind()
	}
	return out
}

// NewRegistry builds every handler of the table with deps and its section from sections
// (config.Config.Sections; a kind without one gets its section's defaults) and registers it.
func NewRegistry(deps Deps, sections map[string]any) (*job.Registry, error) {
	reg := job.NewRegistry()
	for _, r := range Table() {
		if err := r.register(reg, deps, sections[r.Kind()]); err != nil {
			return nil, err
		}
	}
	return reg, nil
}
