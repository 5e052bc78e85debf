package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
)

// sweepConfig and sweepArgs stand in for a handler's section and args: the config package
// knows handlers only through job.Definition, so its tests bring their own.
type sweepConfig struct {
	Limit    int           `yaml:"limit"`
	TimeZone string        `yaml:"time_zone"`
	MaxWait  time.Duration `yaml:"max_wait"`
}

func (c sweepConfig) WithDefaults() sweepConfig {
	if c.Limit == 0 {
		c.Limit = 10
	}
	if c.TimeZone == "" {
		c.TimeZone = "UTC"
	}
	if c.MaxWait == 0 {
		c.MaxWait = time.Minute
	}
	return c
}

func (c sweepConfig) Validate() error {
	if c.Limit < 1 || c.Limit > 100 {
		return fmt.Errorf("limit: %d is outside 1..100", c.Limit)
	}
	return nil
}

func (c sweepConfig) WithTimeZone(zone string) sweepConfig {
	if c.TimeZone == "" {
		c.TimeZone = zone
	}
	return c
}

func (c sweepConfig) CheckSpec(s job.Spec) error {
	if s.Timeout <= c.MaxWait {
		return fmt.Errorf("timeout: %s must be above max_wait (%s)", s.Timeout, c.MaxWait)
	}
	return nil
}

type sweepArgs struct {
	DryRun bool `json:"dry_run"`
	Max    int  `json:"max"`
}

func (a *sweepArgs) Validate() error {
	if a.Max < 0 {
		return errors.New("max is negative")
	}
	return nil
}

type reportConfig struct {
	Top int `yaml:"top"`
}

func (c reportConfig) WithDefaults() reportConfig { return c }
func (c reportConfig) Validate() error            { return nil }

type reportArgs struct{}

var sweepPolicy = job.Spec{Schedule: "0 0 4 * * *", Shards: 3, Timeout: time.Hour, Misfire: job.MisfireSkip}

func testKinds() []job.Definition {
	return []job.Definition{
		job.Define[sweepConfig, sweepArgs]("sweep", sweepPolicy),
		job.Define[reportConfig, reportArgs]("report", job.Spec{Schedule: "0 0 1 * * *"}),
	}
}

func parse(raw []byte, env func(string) string) (*Config, error) { return Parse(raw, env, testKinds()) }

const base = "postgres: {dsn: postgres://x@127.0.0.1/db}\n"

func TestNoJobsSectionRunsEveryJobOnItsPolicy(t *testing.T) {
	t.Parallel()
	cfg, err := parse([]byte(base), noEnv)
	require.NoError(t, err)
	require.Equal(t, []string{"report", "sweep"}, cfg.Scheduled())
	s := cfg.Jobs["sweep"]
	require.Equal(t, "0 0 4 * * *", s.Schedule)
	require.Equal(t, 3, s.Shards)
	require.Equal(t, time.Hour, s.Timeout)
	require.Equal(t, job.MisfireSkip, s.Misfire)
	require.Equal(t, job.DefaultMaxAttempts, s.MaxAttempts)
	require.Equal(t, 4, s.MaxAttempts, "retry count 3 means three retries")
	require.Equal(t, "UTC", s.TimeZone)
	require.Equal(t, 10, job.SectionOf[sweepConfig](cfg.Sections, "sweep").Limit)
}

func TestJobsSectionOnlyOverrides(t *testing.T) {
	t.Parallel()
	cfg, err := parse([]byte(base+"jobs:\n  sweep: {timeout: 2h, max_attempts: 2}\n  report: {enabled: false}\n"), noEnv)
	require.NoError(t, err)
	s := cfg.Jobs["sweep"]
	require.Equal(t, 2*time.Hour, s.Timeout)
	require.Equal(t, 2, s.MaxAttempts)
	require.Equal(t, "0 0 4 * * *", s.Schedule, "unset keys keep the policy")
	require.Equal(t, 3, s.Shards)
	require.Equal(t, []string{"sweep"}, cfg.Scheduled(), "enabled: false turns a default schedule off")
	require.False(t, cfg.Jobs["report"].IsEnabled())
	require.Equal(t, "0 0 1 * * *", cfg.Jobs["report"].Schedule, "the schedule is still shown")
}

func TestTopLevelTimeZone(t *testing.T) {
	t.Parallel()
	cfg, err := parse([]byte(base+"time_zone: Asia/Shanghai\njobs: {report: {time_zone: Europe/Berlin}}\nhandlers: {sweep: {limit: 5}}\n"), noEnv)
	require.NoError(t, err)
	require.Equal(t, "Asia/Shanghai", cfg.Jobs["sweep"].TimeZone)
	require.Equal(t, "Europe/Berlin", cfg.Jobs["report"].TimeZone, "a job may name its own zone")
	require.Equal(t, "Asia/Shanghai", job.SectionOf[sweepConfig](cfg.Sections, "sweep").TimeZone, "report days follow it")
	next, ok := cfg.Jobs["sweep"].NextFire(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	require.True(t, ok)
	require.Equal(t, time.Date(2026, 12, 2, 4, 0, 0, 0, time.FixedZone("CST", 8*3600)).UTC(), next.UTC(), "04:00 Shanghai")
	require.Equal(t, "Asia/Shanghai", cfg.Spec("other").TimeZone)

	cfg, err = parse([]byte(base+"time_zone: Asia/Shanghai\nhandlers: {sweep: {time_zone: UTC}}\n"), noEnv)
	require.NoError(t, err)
	require.Equal(t, "UTC", job.SectionOf[sweepConfig](cfg.Sections, "sweep").TimeZone, "a section may name its own zone")

	for _, zone := range []string{"Mars/Olympus", "Local", "+08:00"} {
		_, err := parse([]byte(base+"time_zone: '"+zone+"'\n"), noEnv)
		require.ErrorContains(t, err, "config: time_zone:", zone)
	}
}

func TestSectionsAndParamsAreCheckedByTheJobsRules(t *testing.T) {
	t.Parallel()
	cases := []struct{ yaml, want string }{
		{"jobs: {sweep: {params: {dryrun: true}}}\n", `config: jobs.sweep.params: json: unknown field "dryrun"`},
		{"jobs: {sweep: {params: {max: -1}}}\n", "config: jobs.sweep.params: max is negative"},
		{"jobs: {sweep: {params: {max: oops}}}\n", "config: jobs.sweep.params:"},
		{"jobs: {sweep: {timeout: 30s}}\n", "config: jobs.sweep.timeout: 30s must be above max_wait"},
		{"handlers: {sweep: {limit: 1000}}\n", "config: handlers.sweep.limit: 1000 is outside 1..100"},
		{"handlers: {sweep: {limt: 5}}\n", "config: handlers.sweep: yaml: unmarshal errors:\n  line 1: field limt not found"},
		{"handlers: {nightly_magic: {}}\n", "config: handlers.nightly_magic: no such job kind"},
	}
	for _, tc := range cases {
		_, err := parse([]byte(base+tc.yaml), noEnv)
		require.ErrorContains(t, err, tc.want, tc.yaml)
	}
	cfg, err := parse([]byte(base+"jobs: {sweep: {params: {dry_run: true, max: 5}}}\n"), noEnv)
	require.NoError(t, err)
	require.JSONEq(t, `{"dry_run": true, "max": 5}`, string(cfg.Jobs["sweep"].ParamsJSON()))
}

func TestEveryErrorIsListed(t *testing.T) {
	t.Parallel()
	_, err := parse([]byte(`
log: {level: loud}
time_zone: Nowhere/Land
consumer: {heartbeat_interval: 5s, stale_after: 6s}
jobs: {sweep: {params: {dryrun: true}}, report: {schedule: 'at noon'}}
handlers: {sweep: {limit: 0}}
redis: {addr: nohost}
`), noEnv)
	require.Error(t, err)
	for _, want := range []string{"postgres.dsn", "log.level", "config: time_zone", "consumer.stale_after",
		"jobs.sweep.params", "jobs.report.schedule", "redis.addr"} {
		require.ErrorContains(t, err, want)
	}
	require.Len(t, strings.Split(err.Error(), "\n"), 7, "one line per problem:\n%s", err)
}
