package handlers_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/job"
)

// A job is one file in handlers/. This one counts down; in a real file the handler would
// hold the client of the system it maintains (Deps has them).

// CountdownKind is the job kind: the key under jobs: and handlers: in the config.
const CountdownKind = "countdown"

// CountdownConfig is the handlers.countdown section of the config.
type CountdownConfig struct {
	From     int    `yaml:"from"`
	TimeZone string `yaml:"time_zone"`
}

// WithDefaults fills unset keys.
func (c CountdownConfig) WithDefaults() CountdownConfig {
	if c.From == 0 {
		c.From = 3
	}
	if c.TimeZone == "" {
		c.TimeZone = "UTC"
	}
	return c
}

// Validate names the bad key, relative to the section.
func (c CountdownConfig) Validate() error {
	if c.From < 1 || c.From > 10 {
		return fmt.Errorf("from: %d is outside 1..10", c.From)
	}
	return nil
}

// WithTimeZone (optional) makes the section's zone follow the config's top-level time_zone.
func (c CountdownConfig) WithTimeZone(zone string) CountdownConfig {
	if c.TimeZone == "" {
		c.TimeZone = zone
	}
	return c
}

// CountdownArgs are a run's params: decoded (unknown fields refused) and validated before Run.
type CountdownArgs struct {
	From *int `json:"from,omitempty"`
}

// Validate refuses params that can never run; the consumer records them rejected.
func (a *CountdownArgs) Validate() error {
	if a.From != nil && *a.From < 1 {
		return errors.New("from must be at least 1")
	}
	return nil
}

// CountdownPolicy is the job's default run policy: daily at 06:00 in the config's time_zone.
func CountdownPolicy() job.Spec {
	return job.Spec{Schedule: "0 0 6 * * *", Timeout: time.Minute, Misfire: job.MisfireSkip}
}

// Countdown is the handler.
type Countdown struct{ cfg CountdownConfig }

// Kind implements job.Handler.
func (c *Countdown) Kind() string { return CountdownKind }

// Run returns what it counted; an error would be retried (job.Retry to say when) or, wrapped
// with job.Discard, failed at once.
func (c *Countdown) Run(ctx context.Context, run *job.Run[CountdownArgs]) (any, error) {
	from := c.cfg.From
	if run.Args.From != nil {
		from = *run.Args.From
	}
	var out []int
	for i := from; i > 0; i-- {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		out = append(out, i)
	}
	return out, nil
}

// Example_writingAJob shows the whole of adding a job: the file above, one row in
// handlers.Table, and (optionally) YAML.
func Example_writingAJob() {
	// 1. The row, as it would appear in handlers.Table().
	row := handlers.Define(CountdownKind, CountdownPolicy(), func(d handlers.Deps, c CountdownConfig) (job.Handler[CountdownArgs], error) {
		return &Countdown{cfg: c}, nil
	})

	// 2. The config: no jobs: section needed, the policy applies; YAML only overrides.
	cfg, err := config.Parse([]byte(`
postgres: {dsn: postgres://x@127.0.0.1/db}
time_zone: Asia/Shanghai
handlers:
  countdown: {from: 5}
`), nil, []job.Definition{row.Definition})
	if err != nil {
		fmt.Println(err)
		return
	}
	spec := cfg.Jobs[CountdownKind]
	fmt.Println(spec.Schedule, spec.TimeZone, spec.MaxAttempts, "attempts")

	// Scheduled params are checked by the job's own rules before anything starts.
	_, err = config.Parse([]byte(`
postgres: {dsn: postgres://x@127.0.0.1/db}
jobs: {countdown: {params: {from: 0}}}
`), nil, []job.Definition{row.Definition})
	fmt.Println(err)

	// 3. A test runs the handler through the consumer's decode and validate path.
	h := &Countdown{cfg: *job.SectionOf[CountdownConfig](cfg.Sections, CountdownKind)}
	res, err := handlertest.Run(context.Background(), h, handlertest.Job[CountdownArgs]{})
	fmt.Println(res, err)
	_, err = handlertest.Run(context.Background(), h, handlertest.Job[CountdownArgs]{Params: []byte(`{"form": 2}`)})
	fmt.Println(err)

	// The node builds every row's handler from its clients and registers it.
	reg, err := handlers.NewRegistry(handlers.Deps{Log: slog.New(slog.DiscardHandler)}, cfg.Sections)
	fmt.Println(reg.Known(handlers.PartitionKind), err)
	// Output:
	// 0 0 6 * * * Asia/Shanghai 4 attempts
	// config: jobs.countdown.params: from must be at least 1
	// [5 4 3 2 1] <nil>
	// rejected: params: json: unknown field "form"
	// true <nil>
}
