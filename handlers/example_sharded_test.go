package handlers_test

import (
	"context"
	"fmt"
	"time"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/job"
)

// A sharded job: each run is split into Shards messages that share the run key, spread over
// the topic's queues and so over the nodes; shard i of n does the part of the work whose id
// is i modulo n, as file_gc does with file ids. Nothing is shared between shards but the
// run key: each shard is claimed, run, retried and recorded on its own.

// SweepConfig is the handlers.sweep section; this job has no keys of its own.
type SweepConfig struct{}

// WithDefaults fills unset keys.
func (SweepConfig) WithDefaults() SweepConfig { return SweepConfig{} }

// Validate has nothing to check.
func (SweepConfig) Validate() error { return nil }

// SweepArgs are a run's params.
type SweepArgs struct {
	DryRun bool `json:"dry_run,omitempty"`
}

// Sweep visits the ids of its shard; a real job would page through a table with
// "WHERE id % $total = $index", keyset by id.
type Sweep struct{ ids []int64 }

// Kind implements job.Handler.
func (s *Sweep) Kind() string { return "sweep" }

// Run does shard run.Shard.Index of run.Shard.Total and returns what it did: the shard's
// result in the ledger.
func (s *Sweep) Run(ctx context.Context, run *job.Run[SweepArgs]) (any, error) {
	var mine []int64
	for _, id := range s.ids {
		if err := ctx.Err(); err != nil {
			return mine, err // a drain or a cancel: the shard ends interrupted or cancelled
		}
		if id%int64(run.Shard.Total) == int64(run.Shard.Index) {
			mine = append(mine, id)
		}
	}
	return map[string]any{"shard": run.Shard.Index, "visited": mine, "dry_run": run.Args.DryRun}, nil
}

func Example_writingAShardedJob() {
	// The default policy asks for three shards; jobs.sweep.shards in the file overrides it,
	// and jobctl run sweep --shards N for one forced run.
	policy := job.Spec{Schedule: "0 0 4 * * *", Shards: 3, Timeout: time.Hour}
	row := handlers.Define("sweep", policy, func(d handlers.Deps, c SweepConfig) (job.Handler[SweepArgs], error) {
		return &Sweep{}, nil
	})
	cfg, err := config.Parse([]byte("postgres: {dsn: postgres://x@127.0.0.1/db}\n"), nil, []job.Definition{row.Definition})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("shards:", cfg.Jobs["sweep"].Shards)

	// Each shard message runs the handler once; the test helper takes the shard as the
	// consumer would get it from the message.
	h := &Sweep{ids: []int64{10, 11, 12, 13, 14, 15, 16}}
	for i := range 3 {
		res, err := handlertest.Run(context.Background(), h, handlertest.Job[SweepArgs]{
			RunKey: "manual:example", Shard: job.Shard{Index: i, Total: 3}, Args: SweepArgs{DryRun: true}})
		fmt.Println(res, err)
	}
	// Output:
	// shards: 3
	// map[dry_run:true shard:0 visited:[12 15]] <nil>
	// map[dry_run:true shard:1 visited:[10 13 16]] <nil>
	// map[dry_run:true shard:2 visited:[11 14]] <nil>
}
