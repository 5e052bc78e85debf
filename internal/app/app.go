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
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/handlers"
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
	DB *pgxpool.Pool
	S3 *minio.Client
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
	fileGC, err := handlers.NewFileGC(deps.DB, deps.objectStore(), cfg.Handlers.FileGC, now, log.With("handler", handlers.FileGCKind))
	if err != nil {
		return nil, err
	}
	handlers.Register(reg, fileGC)
	return reg, nil
}

// KnownKinds lists the job kinds this build implements, without connecting to anything
// (jobctl and config check use it).
func KnownKinds() []string { return []string{handlers.FileGCKind, handlers.PartitionKind} }
