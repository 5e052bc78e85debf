package job

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// MisfirePolicy says what the ticker does with occurrences it missed while no leader ran.
type MisfirePolicy string

// Misfire policies.
const (
	MisfireSkip     MisfirePolicy = "skip"      // record the missed occurrences as skipped
	MisfireFireOnce MisfirePolicy = "fire_once" // run the latest missed one now, if within the bound
)

// OverlapPolicy says whether a run may start while another run of the same job is running.
type OverlapPolicy string

// Overlap policies.
const (
	OverlapAllow         OverlapPolicy = "allow"
	OverlapSkipIfRunning OverlapPolicy = "skip_if_running"
)

// Spec is one job's schedule and run policy. Each handler declares its default (the Policy of
// its row in handlers.Table); the jobs section of the config overrides it field by field.
type Spec struct {
	// Schedule is a cron spec, with optional seconds field ("0 */10 * * * *" or "*/10 * * * *")
	// or a descriptor such as "@daily". Empty means the job runs only when forced.
	Schedule string `yaml:"schedule" json:"schedule"`
	// TimeZone the schedule is read in (IANA name). Default: the config's top-level
	// time_zone, itself UTC by default.
	TimeZone string `yaml:"time_zone" json:"time_zone"`
	// Enabled turns the schedule on (default); enabled: false stops scheduled runs of a job
	// that has a default schedule. Forced runs work either way.
	Enabled *bool `yaml:"enabled" json:"enabled"`
	// Shards splits each run into this many messages, spread over the topic's queues.
	Shards int `yaml:"shards" json:"shards"`
	// Params are the scheduled runs' parameters (forced runs bring their own).
	Params map[string]any `yaml:"params" json:"params,omitempty"`
	// Timeout bounds one attempt; the handler's context is cancelled after it.
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// MaxAttempts is how many attempts a run gets before it is recorded failed: the first
	// and its retries. Default 4, the design's "retry three times".
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts"`
	// Misfire is the policy for occurrences missed while no ticker led.
	Misfire MisfirePolicy `yaml:"misfire" json:"misfire"`
	// MisfireBound: with fire_once, a missed occurrence older than this is skipped instead.
	MisfireBound time.Duration `yaml:"misfire_bound" json:"misfire_bound"`
	// Overlap is the policy when a run starts while another of the same job is running.
	Overlap OverlapPolicy `yaml:"overlap" json:"overlap"`
}

// DefaultMaxAttempts is one attempt and three retries: the design's failure retry count 3.
const DefaultMaxAttempts = 4

// Over returns base with every field s sets replacing base's: s is the jobs.<kind> section
// of the file, base the handler's default policy. Params, when s has any, replace base's
// whole.
func (s Spec) Over(base Spec) Spec {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&base.Schedule, s.Schedule)
	set(&base.TimeZone, s.TimeZone)
	set((*string)(&base.Misfire), string(s.Misfire))
	set((*string)(&base.Overlap), string(s.Overlap))
	if s.Enabled != nil {
		base.Enabled = s.Enabled
	}
	if s.Shards != 0 {
		base.Shards = s.Shards
	}
	if s.Params != nil {
		base.Params = s.Params
	}
	if s.Timeout != 0 {
		base.Timeout = s.Timeout
	}
	if s.MaxAttempts != 0 {
		base.MaxAttempts = s.MaxAttempts
	}
	if s.MisfireBound != 0 {
		base.MisfireBound = s.MisfireBound
	}
	return base
}

// WithDefaults fills unset fields.
func (s Spec) WithDefaults() Spec {
	if s.TimeZone == "" {
		s.TimeZone = "UTC"
	}
	if s.Enabled == nil {
		on := true
		s.Enabled = &on
	}
	if s.Shards == 0 {
		s.Shards = 1
	}
	if s.Timeout == 0 {
		s.Timeout = 10 * time.Minute
	}
	if s.MaxAttempts == 0 {
		s.MaxAttempts = DefaultMaxAttempts
	}
	if s.Misfire == "" {
		s.Misfire = MisfireFireOnce
	}
	if s.MisfireBound == 0 {
		s.MisfireBound = time.Hour
	}
	if s.Overlap == "" {
		s.Overlap = OverlapSkipIfRunning
	}
	return s
}

// IsEnabled reports whether the ticker publishes this job.
func (s Spec) IsEnabled() bool { return s.Schedule != "" && (s.Enabled == nil || *s.Enabled) }

var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule reads a cron spec in the spec's time zone.
func (s Spec) ParseSchedule() (cron.Schedule, error) {
	loc, err := time.LoadLocation(s.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("time_zone: %w", err)
	}
	sched, err := cronParser.Parse(s.Schedule)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w", s.Schedule, err)
	}
	if spec, ok := sched.(*cron.SpecSchedule); ok {
		spec.Location = loc
	}
	return sched, nil
}

// Validate names the first bad key, relative to the job's section.
func (s Spec) Validate() error {
	if s.Schedule != "" {
		if _, err := s.ParseSchedule(); err != nil {
			return err
		}
	} else if _, err := time.LoadLocation(s.TimeZone); err != nil {
		return fmt.Errorf("time_zone: %w", err)
	}
	switch {
	case s.Shards < 1 || s.Shards > MaxShards:
		return fmt.Errorf("shards: %d is outside 1..%d", s.Shards, MaxShards)
	case s.Timeout < time.Second:
		return fmt.Errorf("timeout: %s is below 1s", s.Timeout)
	case s.MaxAttempts < 1 || s.MaxAttempts > 16:
		return fmt.Errorf("max_attempts: %d is outside 1..16", s.MaxAttempts)
	}
	switch s.Misfire {
	case MisfireSkip, MisfireFireOnce:
	default:
		return fmt.Errorf("misfire: %q is not skip or fire_once", s.Misfire)
	}
	switch s.Overlap {
	case OverlapAllow, OverlapSkipIfRunning:
	default:
		return fmt.Errorf("overlap: %q is not allow or skip_if_running", s.Overlap)
	}
	if _, err := json.Marshal(s.Params); err != nil {
		return fmt.Errorf("params: %w", err)
	}
	return nil
}

// ParamsJSON returns the scheduled runs' params as a JSON object.
func (s Spec) ParamsJSON() json.RawMessage {
	if len(s.Params) == 0 {
		return json.RawMessage("{}")
	}
	b, err := json.Marshal(s.Params)
	if err != nil {
		return json.RawMessage("{}") // Validate refused these at start
	}
	return b
}
