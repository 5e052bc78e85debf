// Package app wires config into running components. Both binaries and the integration tests
// build nodes through it, so a test node is the production node.
package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/apache/rocketmq-client-go/v2/rlog"
	"github.com/elastic/go-elasticsearch/v8"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/redis/go-redis/v9"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/ledger"
)

// NewLogger builds the slog logger the config asks for.
func NewLogger(cfg config.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// QuietRocketMQ lowers the client's own logging, which writes at Info every few seconds.
// "warning" is not a level it knows (it falls back to info): it must be "warn".
func QuietRocketMQ() { rlog.SetLogLevel("error") }

// OpenPool connects to Postgres and checks the connection.
func OpenPool(ctx context.Context, cfg config.PostgresConfig) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres.dsn: %w", err)
	}
	pc.MaxConns = cfg.MaxConns
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres %s:%d: %w", pc.ConnConfig.Host, pc.ConnConfig.Port, err)
	}
	return pool, nil
}

// Deps are the clients handlers use. Nil members belong to systems this node does not reach.
type Deps struct {
	DB    *pgxpool.Pool
	Redis *redis.Client
	ES    *elasticsearch.Client
	Neo4j neo4j.DriverWithContext
	S3    *minio.Client
}

// objectStore turns a nil client into a nil interface (not an interface holding nil).
func (d Deps) objectStore() handlers.ObjectStore {
	if d.S3 == nil {
		return nil
	}
	return d.S3
}

// NewRegistry registers every handler with its config.
func NewRegistry(cfg *config.Config, deps Deps, log *slog.Logger, now func() time.Time) (*handlers.Registry, error) {
	reg := handlers.NewRegistry()
	partition, err := handlers.NewPartition(deps.DB, cfg.Handlers.Partition, now, log.With("handler", handlers.PartitionKind))
	if err != nil {
		return nil, err
	}
	handlers.Register(reg, partition)
	dailyStats, err := handlers.NewDailyStats(deps.DB, cfg.Handlers.DailyStats, now, log.With("handler", handlers.DailyStatsKind))
	if err != nil {
		return nil, err
	}
	handlers.Register(reg, dailyStats)
	groupActivity, err := handlers.NewGroupActivity(deps.DB, cfg.Handlers.GroupActivity, now, log.With("handler", handlers.GroupActivityKind))
	if err != nil {
		return nil, err
	}
	handlers.Register(reg, groupActivity)
	blacklist, err := handlers.NewTokenBlacklist(deps.Redis, cfg.Handlers.TokenBlacklist, now, log.With("handler", handlers.TokenBlacklistKind))
	if err != nil {
		return nil, err
	}
	handlers.Register(reg, blacklist)
	gaps, err := handlers.NewMsgGap(deps.DB, cfg.Handlers.MsgGap, now, log.With("handler", handlers.MsgGapKind))
	if err != nil {
		return nil, err
	}
	handlers.Register(reg, gaps)
	if err := registerSearch(reg, cfg, deps, log, now); err != nil {
		return nil, err
	}
	fileGC, err := handlers.NewFileGC(deps.DB, deps.objectStore(), cfg.Handlers.FileGC, now, log.With("handler", handlers.FileGCKind))
	if err != nil {
		return nil, err
	}
	handlers.Register(reg, fileGC)
	retention, err := handlers.NewRetention(ledger.New(deps.DB), cfg.Handlers.Retention, now, log.With("handler", handlers.RetentionKind))
	if err != nil {
		return nil, err
	}
	handlers.Register(reg, retention)
	return reg, nil
}

// KnownKinds lists the job kinds this build implements, without connecting to anything
// (jobctl and config check use it).
func KnownKinds() []string {
	return []string{
		handlers.PartitionKind,
		handlers.DailyStatsKind,
		handlers.GroupActivityKind,
		handlers.TokenBlacklistKind,
		handlers.MsgGapKind,
		handlers.ESForceMergeKind,
		handlers.GraphConsistencyKind,
		handlers.FileGCKind,
		handlers.RetentionKind,
	}
}

// OpenRedis returns a client for cfg. It does not connect: a Redis that is down fails the
// jobs that need it (and alerts), not the node's start.
func OpenRedis(cfg config.RedisConfig) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: cfg.Addr, Password: cfg.Password, DB: cfg.DB})
}
