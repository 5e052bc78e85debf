package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/mq"
)

type globals struct {
	cfgPath string
	json    bool
	// server, when set, sends every command through that node's admin API.
	server string
	// insecure lets the token go over plain HTTP to a host that is not loopback.
	insecure bool
	// caCert is a PEM file of the CA the node's admin certificate is signed by (else the
	// system's roots).
	caCert string
}

// exitError carries a specific exit code (run --wait exits 2 when the run did not succeed).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	// cobra reports a mistyped command before any of ours runs.
	if strings.HasPrefix(err.Error(), "unknown command") {
		return exitUsage
	}
	return exitFailed
}

func (g *globals) config() (*config.Config, error) {
	return app.LoadConfig(g.cfgPath, os.Getenv)
}

// ledger opens the database named by the config. The caller closes the pool.
func (g *globals) ledger(ctx context.Context) (*config.Config, *ledger.Ledger, *pgxpool.Pool, error) {
	cfg, err := g.config()
	if err != nil {
		return nil, nil, nil, err
	}
	l, pool, err := openLedger(ctx, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	return cfg, l, pool, nil
}

// openLedger opens the database cfg names; the ledger decides what recorded runs stand for by
// cfg's handler sections. The caller closes the pool.
func openLedger(ctx context.Context, cfg *config.Config) (*ledger.Ledger, *pgxpool.Pool, error) {
	pool, err := app.OpenPool(ctx, cfg.Postgres)
	if err != nil {
		return nil, nil, err
	}
	return ledger.New(pool).WithSections(cfg.Sections), pool, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// parseParams turns k=v pairs into a JSON object. A value that parses as JSON (a number,
// true, [..], {..}) keeps its type; anything else is a string.
func parseParams(pairs []string) (json.RawMessage, error) {
	out := map[string]any{}
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--param %q: want key=value", p)
		}
		var parsed any
		if err := json.Unmarshal([]byte(v), &parsed); err == nil {
			out[k] = parsed
		} else {
			out[k] = v
		}
	}
	return json.Marshal(out)
}

// openProducer checks that a name server answers (so a wrong address is one clear line, not a
// client timeout) and starts a producer. The caller closes it.
func openProducer(ctx context.Context, cfg *config.Config) (*mq.Producer, error) {
	if err := app.CheckNameServers(ctx, cfg.RocketMQ); err != nil {
		return nil, err
	}
	app.QuietRocketMQ()
	return mq.NewProducer(cfg.RocketMQ, "")
}
