package filegc

import (
	"errors"
	"fmt"
	"time"

	"github.com/chatplat/job-service/filereap"
)

// Config is the filegc section: the event-driven GC's subscription and pace. The file table
// is the file_gc handler's (handlers.file_gc.file_table).
type Config struct {
	// Enabled starts the event consumer on this node.
	Enabled bool `yaml:"enabled"`
	// Topic carries the file service's events; created at start like the job topic.
	Topic string `yaml:"topic"`
	// Group is the consumer group: its own, so GC events never queue behind a long job and
	// each backlog shows on its own in the RocketMQ dashboard.
	Group string `yaml:"group"`
	// Tag of ref_count=0 events.
	Tag string `yaml:"tag"`
	// Grace: an event is acted on only this long after its event_time.
	Grace time.Duration `yaml:"grace"`
	// BatchSize is how many events one consume call takes (one multi-delete, one DELETE).
	BatchSize int `yaml:"batch_size"`
	// PullInterval is how long the consumer waits between pulls from a queue. Events pile up
	// meanwhile, so batches fill and fewer timer messages carry them through the grace
	// period, at the cost of that much latency. Default 0 (pull at once): on the local stack
	// 500ms did not make the benchmark faster.
	PullInterval *time.Duration `yaml:"pull_interval"`
	// Goroutines is how many batches one node processes at once.
	Goroutines int `yaml:"goroutines"`
	// MaxReconsume bounds redeliveries of a failing batch; then it goes to %DLQ%<group> and
	// the daily sweep is the safety net.
	MaxReconsume int `yaml:"max_reconsume"`
	// ClockSkew: an event_time later than now plus this is refused as malformed.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// CheckMissing stats each object first so missing objects are counted (one HEAD each).
	CheckMissing bool `yaml:"check_missing"`
	// ReaperOptions: lock_timeout, s3_timeout (default 30s), s3_parallel, shared with file_gc.
	filereap.ReaperOptions `yaml:",inline"`
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.Tag == "" {
		c.Tag = DefaultTag
	}
	if c.Grace == 0 {
		c.Grace = 10 * time.Minute
	}
	if c.BatchSize == 0 {
		c.BatchSize = 32
	}
	if c.Goroutines == 0 {
		c.Goroutines = 4
	}
	if c.PullInterval == nil {
		var d time.Duration
		c.PullInterval = &d
	}
	if c.MaxReconsume == 0 {
		c.MaxReconsume = 16
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = 5 * time.Minute
	}
	c.ReaperOptions = c.ReaperOptions.WithDefaults(30 * time.Second)
	return c
}

// Validate names the first bad key, relative to the section.
func (c Config) Validate() error {
	switch {
	case c.Topic == "":
		return errors.New("topic: required")
	case c.Group == "":
		return errors.New("group: required")
	case c.Tag == "":
		return errors.New("tag: required")
	case c.Grace < time.Second:
		return fmt.Errorf("grace: %s is below 1s", c.Grace)
	case c.Grace > 72*time.Hour:
		return fmt.Errorf("grace: %s is beyond RocketMQ's timer range (72h)", c.Grace)
	case c.BatchSize < 1 || c.BatchSize > 1000:
		return fmt.Errorf("batch_size: %d is outside 1..1000", c.BatchSize)
	case c.PullInterval != nil && (*c.PullInterval < 0 || *c.PullInterval > 10*time.Second):
		return fmt.Errorf("pull_interval: %s is outside 0..10s", *c.PullInterval)
	case c.Goroutines < 1 || c.Goroutines > 256:
		return fmt.Errorf("goroutines: %d is outside 1..256", c.Goroutines)
	case c.MaxReconsume < 1 || c.MaxReconsume > 32:
		return fmt.Errorf("max_reconsume: %d is outside 1..32", c.MaxReconsume)
	case c.ClockSkew < 0:
		return fmt.Errorf("clock_skew: %s is negative", c.ClockSkew)
	}
	return c.ReaperOptions.Validate()
}
