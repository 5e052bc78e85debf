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
	"github.com/redis/go-redis/v9"

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

// LoadConfig is config.Load with this build's table of jobs (handlers.Table).
func LoadConfig(path string, env func(string) string) (*config.Config, error) {
	return config.Load(path, env, handlers.Definitions())
}

// ParseConfig is config.Parse with this build's table of jobs.
func ParseConfig(raw []byte, env func(string) string) (*config.Config, error) {
	return config.Parse(raw, env, handlers.Definitions())
}

// OpenRedis returns a client for cfg. It does not connect: a Redis that is down fails the
// jobs that need it (and alerts), not the node's start.
func OpenRedis(cfg config.RedisConfig) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: cfg.Addr, Password: cfg.Password, DB: cfg.DB})
}
