// Package chaos proves the spine (ticker, consumer, ledger) under faults: it starts real
// job-service processes (a test build, cmd testnode, that adds the job kinds below), kills,
// stops and restarts them and the servers under them, and checks the ledger afterwards. The
// benchmarks in internal/bench use the same harness.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatplat/job-service/job"
)

// Job kinds the test build registers. They exist only in testnode, never in the production binary.
const (
	// ProbeKind sleeps, then records its side effect in chaos_effects.
	ProbeKind = "chaos_probe"
	// NoopKind returns at once and touches nothing: dispatch overhead alone.
	NoopKind = "chaos_noop"
	// TickKinds are probe copies with their own names, so a benchmark can schedule many jobs.
	TickKinds = 20
)

// TickKind names the i-th probe copy.
func TickKind(i int) string { return fmt.Sprintf("chaos_tick_%02d", i) }

// EffectsDDL creates the side-effect table the probe writes. One row per run key and shard;
// count says how many times a handler got as far as its side effect.
const EffectsDDL = `CREATE TABLE IF NOT EXISTS chaos_effects (
	job        text        NOT NULL,
	run_key    text        NOT NULL,
	shard      int         NOT NULL,
	count      int         NOT NULL,
	nodes      text[]      NOT NULL,
	attempts   int[]       NOT NULL,
	started_at timestamptz NOT NULL, -- handler start of the first execution
	PRIMARY KEY (job, run_key, shard))`

// ProbeArgs are the probe's parameters.
type ProbeArgs struct {
	// SleepMS is how long the handler works before its side effect.
	SleepMS int `json:"sleep_ms,omitempty"`
	// PG makes the wait a pg_sleep on a pooled connection (real I/O) instead of a timer.
	PG bool `json:"pg,omitempty"`
}

// Validate bounds the sleep.
func (a ProbeArgs) Validate() error {
	if a.SleepMS < 0 || a.SleepMS > 10*60*1000 {
		return fmt.Errorf("sleep_ms: %d is outside 0..600000", a.SleepMS)
	}
	return nil
}

// ProbeResult is what the probe leaves in the ledger.
type ProbeResult struct {
	Node  string `json:"node"`
	Count int    `json:"count"` // executions of this run key + shard so far, this one included
}

// Probe does "work" (a sleep) and then one visible side effect: an upsert into chaos_effects
// that counts executions, so a test sees a shard done twice.
type Probe struct {
	kind string
	node string
	db   *pgxpool.Pool
	now  func() time.Time
	log  *slog.Logger
}

// NewProbe returns a probe registered under kind.
func NewProbe(kind, node string, db *pgxpool.Pool, now func() time.Time, log *slog.Logger) *Probe {
	return &Probe{kind: kind, node: node, db: db, now: now, log: log}
}

// Kind returns the job kind.
func (p *Probe) Kind() string { return p.kind }

// Run sleeps and records the effect.
func (p *Probe) Run(ctx context.Context, run *job.Run[ProbeArgs]) (any, error) {
	start := p.now()
	if d := time.Duration(run.Args.SleepMS) * time.Millisecond; d > 0 {
		if run.Args.PG {
			if _, err := p.db.Exec(ctx, `SELECT pg_sleep($1)`, d.Seconds()); err != nil {
				return nil, fmt.Errorf("pg_sleep: %w", err)
			}
		} else {
			select {
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			case <-time.After(d):
			}
		}
	}
	var count int
	err := p.db.QueryRow(ctx, `
		INSERT INTO chaos_effects (job, run_key, shard, count, nodes, attempts, started_at)
		VALUES ($1, $2, $3, 1, ARRAY[$4::text], ARRAY[$5::int], $6)
		ON CONFLICT (job, run_key, shard) DO UPDATE SET count = chaos_effects.count + 1,
			nodes = chaos_effects.nodes || EXCLUDED.nodes, attempts = chaos_effects.attempts || EXCLUDED.attempts
		RETURNING count`,
		run.Job, run.RunKey, run.Shard.Index, p.node, run.Attempt, start).Scan(&count)
	if err != nil {
		return nil, fmt.Errorf("record effect: %w", err)
	}
	return ProbeResult{Node: p.node, Count: count}, nil
}

// NoopArgs: the no-op takes no parameters.
type NoopArgs struct{}

// Noop succeeds at once.
type Noop struct{}

// Kind returns the job kind.
func (Noop) Kind() string { return NoopKind }

// Run does nothing.
func (Noop) Run(context.Context, *job.Run[NoopArgs]) (any, error) { return nil, nil }

// Register adds the test kinds to reg. db is the node's pool (it must be open by then).
func Register(reg *job.Registry, node string, db *pgxpool.Pool, log *slog.Logger) {
	if db == nil {
		panic(errors.New("chaos: Register needs the node's pool"))
	}
	job.Register(reg, NewProbe(ProbeKind, node, db, time.Now, log))
	job.Register(reg, job.Handler[NoopArgs](Noop{}))
	for i := range TickKinds {
		job.Register(reg, NewProbe(TickKind(i), node, db, time.Now, log))
	}
}
