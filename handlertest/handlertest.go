// Package handlertest runs a job handler the way the consumer does, for the handler's tests:
// the args are encoded into a message's params, the envelope is validated, the params are
// decoded (unknown fields refused) and validated by the args' own rules through a real
// job.Registry, and only then is the handler run. A test of a handler therefore also tests
// that what it is given would have reached it, like river's rivertest.Worker.
package handlertest

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chatplat/job-service/job"
)

// Job is one run to give a handler: its args (or raw params) and the envelope fields a
// handler may read. Zero fields get the values a forced run would have.
type Job[T any] struct {
	// Args are encoded as JSON into the message's params, then decoded back as the consumer
	// decodes them.
	Args T
	// Params, when set, are sent instead of Args: for tests of what a producer may send.
	Params json.RawMessage
	// RunKey defaults to "test:handlertest".
	RunKey string
	// ScheduledAt defaults to now.
	ScheduledAt time.Time
	// Shard defaults to 0 of 1.
	Shard job.Shard
	// Trigger defaults to manual.
	Trigger job.Trigger
	// Attempt defaults to 1; RunID is the ledger row the run would have (0: none).
	Attempt int
	RunID   int64
}

// Envelope returns the message j stands for, with h's kind.
func (j Job[T]) Envelope(kind string) (job.Envelope, error) {
	params := j.Params
	if params == nil {
		b, err := json.Marshal(j.Args)
		if err != nil {
			return job.Envelope{}, fmt.Errorf("encode args: %w", err)
		}
		params = b
	}
	env := job.Envelope{Job: kind, RunKey: j.RunKey, Trigger: j.Trigger, ScheduledAt: j.ScheduledAt,
		Shard: j.Shard, Params: params}
	if env.RunKey == "" {
		env.RunKey = "test:handlertest"
	}
	if env.Trigger == "" {
		env.Trigger = job.TriggerManual
	}
	if env.ScheduledAt.IsZero() {
		env.ScheduledAt = time.Now()
	}
	if env.Shard.Total == 0 {
		env.Shard.Total = 1
	}
	// Tests may run a report for a day long past: the consumer's bounds on scheduled_at are
	// its business, not the handler's, so the envelope is judged at its own time.
	if err := env.Validate(env.ScheduledAt, nil); err != nil {
		return job.Envelope{}, err
	}
	return env, nil
}

// Run runs h with j through the consumer's path: registry, decode, validate, run. A params
// problem comes back as the *job.RejectError the consumer would record, and h is not run.
func Run[T any](ctx context.Context, h job.Handler[T], j Job[T]) (any, error) {
	env, err := j.Envelope(h.Kind())
	if err != nil {
		return nil, err
	}
	reg := job.NewRegistry()
	job.Register(reg, h)
	prepared, err := reg.Prepare(env)
	if err != nil {
		return nil, err
	}
	attempt := j.Attempt
	if attempt == 0 {
		attempt = 1
	}
	return prepared(ctx, j.RunID, attempt)
}

// Build returns the *job.Run a handler of kind would receive for j, decoded and validated the
// same way, for tests of a handler's helpers that take a run (the day or week it reports).
func Build[T any](kind string, j Job[T]) (*job.Run[T], error) {
	env, err := j.Envelope(kind)
	if err != nil {
		return nil, err
	}
	args, err := job.DecodeArgs[T](env.Params)
	if err != nil {
		return nil, err
	}
	attempt := j.Attempt
	if attempt == 0 {
		attempt = 1
	}
	return &job.Run[T]{Envelope: env, Args: args, Attempt: attempt, RunID: j.RunID}, nil
}
