package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// RetentionKind is the job kind of Retention.
const RetentionKind = "ledger_retention"

// RetentionPolicy is the default run policy of ledger_retention: daily at 03:30, one run at a
// time, a missed day caught up once (what is left simply waits for the next run).
func RetentionPolicy() job.Spec {
	return job.Spec{Schedule: "0 30 3 * * *", Timeout: 2 * time.Hour, Misfire: job.MisfireFireOnce,
		MisfireBound: 24 * time.Hour, Overlap: job.OverlapSkipIfRunning}
}

// RetentionConfig configures the ledger_retention job: how long each kind of record is kept.
type RetentionConfig struct {
	// Runs: finished runs (succeeded, failed, rejected, skipped) older than this are deleted with
	// their attempts and logs. Runs still under way are never deleted.
	Runs time.Duration `yaml:"runs"`
	// Alerts: alert de-duplication rows not seen for this long.
	Alerts time.Duration `yaml:"alerts"`
	// GCLog: what the file GC removed, kept longer because it answers "where did my file go".
	GCLog time.Duration `yaml:"gc_log"`
	// Nodes: rows of nodes whose last heartbeat is older than this.
	Nodes time.Duration `yaml:"nodes"`
	// BatchSize rows go per DELETE, each its own short transaction.
	BatchSize int `yaml:"batch_size"`
	// Pause between batches leaves the database room for the work it is there for.
	Pause time.Duration `yaml:"pause"`
}

// WithDefaults fills unset fields.
func (c RetentionConfig) WithDefaults() RetentionConfig {
	if c.Runs == 0 {
		c.Runs = 30 * 24 * time.Hour
	}
	if c.Alerts == 0 {
		c.Alerts = 30 * 24 * time.Hour
	}
	if c.GCLog == 0 {
		c.GCLog = 180 * 24 * time.Hour
	}
	if c.Nodes == 0 {
		c.Nodes = 7 * 24 * time.Hour
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.Pause == 0 {
		c.Pause = 50 * time.Millisecond
	}
	return c
}

// Validate names the first bad key.
func (c RetentionConfig) Validate() error {
	// Below a day a typo (30m for 30d) would wipe the ledger an operator is reading.
	for key, d := range map[string]time.Duration{"runs": c.Runs, "alerts": c.Alerts, "gc_log": c.GCLog, "nodes": c.Nodes} {
		if d < 24*time.Hour {
			return fmt.Errorf("%s: %s is below 24h", key, d)
		}
	}
	switch {
	case c.BatchSize < 1 || c.BatchSize > 50000:
		return fmt.Errorf("batch_size: %d is outside 1..50000", c.BatchSize)
	case c.Pause < 0 || c.Pause > time.Minute:
		return fmt.Errorf("pause: %s is outside 0..1m", c.Pause)
	}
	return nil
}

// RetentionArgs are the run parameters of ledger_retention.
type RetentionArgs struct {
	// MaxBatches caps the batches of this run over all targets (0: until done); the rest waits
	// for the next run.
	MaxBatches int `json:"max_batches,omitempty"`
}

// Validate checks the cap.
func (a *RetentionArgs) Validate() error {
	if a.MaxBatches < 0 {
		return fmt.Errorf("max_batches: %d is negative", a.MaxBatches)
	}
	return nil
}

// Pruner deletes one batch of old records (ledger.Ledger implements it).
type Pruner interface {
	PruneBatch(ctx context.Context, target ledger.PruneTarget, cutoff time.Time, limit int) (int64, error)
}

// Retention keeps the ledger and the GC log from growing forever. It deletes in small
// batches, each its own transaction, so no statement holds locks for long and a run that is
// killed or cancelled between (or inside) batches leaves nothing half done: the next run
// simply carries on.
type Retention struct {
	db  Pruner
	cfg RetentionConfig
	now func() time.Time
	log *slog.Logger
}

// NewRetention validates cfg and returns the handler.
func NewRetention(db Pruner, cfg RetentionConfig, now func() time.Time, log *slog.Logger) (*Retention, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ledger_retention config: %w", err)
	}
	return &Retention{db: db, cfg: cfg, now: now, log: log}, nil
}

// Kind implements Handler.
func (r *Retention) Kind() string { return RetentionKind }

// RetentionTarget is what one target's pruning did.
type RetentionTarget struct {
	Target      string        `json:"target"`
	Cutoff      time.Time     `json:"cutoff"`
	Deleted     int64         `json:"deleted"`
	Batches     int           `json:"batches"`
	MaxBatch    time.Duration `json:"max_batch_ns"`
	Done        bool          `json:"done"` // nothing older than the cutoff is left
	SecondsUsed float64       `json:"seconds"`
}

// RetentionResult is the run's result in the ledger.
type RetentionResult struct {
	Targets []RetentionTarget `json:"targets"`
	Deleted int64             `json:"deleted"`
}

func (r *Retention) keep(t ledger.PruneTarget) time.Duration {
	switch t {
	case ledger.PruneAlerts:
		return r.cfg.Alerts
	case ledger.PruneGCLog:
		return r.cfg.GCLog
	case ledger.PruneNodes:
		return r.cfg.Nodes
	}
	return r.cfg.Runs
}

// Run implements Handler.
func (r *Retention) Run(ctx context.Context, run *job.Run[RetentionArgs]) (any, error) {
	now := r.now()
	res := RetentionResult{Targets: []RetentionTarget{}}
	batches := 0
	for _, t := range ledger.PruneTargets() {
		tr := RetentionTarget{Target: string(t), Cutoff: now.Add(-r.keep(t))}
		start := r.now()
		for {
			if run.Args.MaxBatches > 0 && batches >= run.Args.MaxBatches {
				break
			}
			bStart := r.now()
			n, err := r.db.PruneBatch(ctx, t, tr.Cutoff, r.cfg.BatchSize)
			if err != nil {
				res.Targets = append(res.Targets, tr)
				// Cancelled or killed: what was deleted stays deleted, the next run continues.
				return res, fmt.Errorf("retention of %s after %d rows: %w", t, tr.Deleted, err)
			}
			batches++
			tr.Batches++
			tr.Deleted += n
			res.Deleted += n
			tr.MaxBatch = max(tr.MaxBatch, r.now().Sub(bStart))
			if n < int64(r.cfg.BatchSize) {
				tr.Done = true
				break
			}
			if err := sleepCtx(ctx, r.cfg.Pause); err != nil {
				res.Targets = append(res.Targets, tr)
				return res, fmt.Errorf("retention of %s after %d rows: %w", t, tr.Deleted, err)
			}
		}
		tr.SecondsUsed = r.now().Sub(start).Seconds()
		res.Targets = append(res.Targets, tr)
		r.log.Info("retention pruned", "target", t, "cutoff", tr.Cutoff, "deleted", tr.Deleted,
			"batches", tr.Batches, "max_batch_ms", tr.MaxBatch.Milliseconds(), "done", tr.Done)
	}
	return res, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
