package archive

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/sqlident"
)

// TableConfig is one partitioned parent and how long its partitions stay hot.
type TableConfig struct {
	// Table is the range-partitioned parent, "table" or "schema.table".
	Table string `yaml:"table"`
	// HotMonths: a partition is archived once its upper bound is at least this many months
	// before the start of the current month. At least 1: the current month is never archived.
	HotMonths int `yaml:"hot_months"`
}

// Config configures the partition_archive job.
type Config struct {
	// Bucket receives the archives; created when missing.
	Bucket string `yaml:"bucket"`
	// Prefix of object keys: <prefix>/<table>/<partition>.csv.gz.
	Prefix string `yaml:"prefix"`
	// Tables and their hot periods. Unset: audit_logs with 3 hot months only. Chat tables
	// (chat_messages, chat_inbox) have no built-in period: they are archived, and their old
	// months dropped from Postgres, only when listed here with hot_months.
	Tables []TableConfig `yaml:"tables"`
	// Drop removes a partition once archived and verified; false keeps it detached (a plain
	// table beside the parent) for the operator to drop.
	Drop *bool `yaml:"drop"`
	// FirstRunDryRun (default true): while the manifest is empty and no preview was recorded (a
	// new deployment), a run only previews what it would archive and drop, with sizes, and
	// records that preview; the next run acts.
	FirstRunDryRun *bool `yaml:"first_run_dry_run"`
	// MaxPartitions caps the partitions one run archives; the rest wait for the next run.
	MaxPartitions int `yaml:"max_partitions"`
	// PartSizeMB is the multipart part size: the upload's memory (one part buffered at a
	// time) and, at 10000 parts, the largest object (16 MiB -> 160 GiB).
	PartSizeMB int `yaml:"part_size_mb"`
	// CompressionLevel of gzip, 1 (fast) .. 9 (small).
	CompressionLevel int `yaml:"compression_level"`
	// LockTimeout bounds how long DETACH and DROP wait for locks; LockRetries retries them
	// with doubling backoff.
	LockTimeout time.Duration `yaml:"lock_timeout"`
	LockRetries int           `yaml:"lock_retries"`
	// TimeZone whose month boundaries count for the hot period and the current month.
	// Unset, it is the job's zone (jobs.partition_archive.time_zone, else the top-level
	// time_zone): "the current month" is the platform's, not UTC's.
	TimeZone string `yaml:"time_zone"`
}

// WithTimeZone sets the zone whose months count, unless the section names one (the config
// passes the job's zone, which is the top-level time_zone when the job names none).
func (c Config) WithTimeZone(zone string) Config {
	if c.TimeZone == "" {
		c.TimeZone = zone
	}
	return c
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Bucket == "" {
		c.Bucket = "chat-archive"
	}
	if c.Prefix == "" {
		c.Prefix = "pg"
	}
	if c.Tables == nil {
		c.Tables = []TableConfig{{"audit_logs", 3}}
	}
	if c.Drop == nil {
		on := true
		c.Drop = &on
	}
	if c.FirstRunDryRun == nil {
		on := true
		c.FirstRunDryRun = &on
	}
	if c.MaxPartitions == 0 {
		c.MaxPartitions = 3
	}
	if c.PartSizeMB == 0 {
		c.PartSizeMB = 16
	}
	if c.CompressionLevel == 0 {
		c.CompressionLevel = 5
	}
	if c.LockTimeout == 0 {
		c.LockTimeout = 2 * time.Second
	}
	if c.LockRetries == 0 {
		c.LockRetries = 5
	}
	if c.TimeZone == "" {
		c.TimeZone = "UTC"
	}
	return c
}

var bucketPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// Validate names the first bad key.
func (c Config) Validate() error {
	if !bucketPattern.MatchString(c.Bucket) {
		return fmt.Errorf("bucket: %q is not an S3 bucket name", c.Bucket)
	}
	if strings.HasPrefix(c.Prefix, "/") || strings.HasSuffix(c.Prefix, "/") || strings.Contains(c.Prefix, "//") {
		return fmt.Errorf("prefix: %q must not start or end with / nor contain //", c.Prefix)
	}
	seen := map[string]bool{}
	for i, t := range c.Tables {
		if err := sqlident.ValidateTable(t.Table); err != nil {
			return fmt.Errorf("tables[%d].table: %w", i, err)
		}
		if seen[t.Table] {
			return fmt.Errorf("tables[%d].table: %q listed twice", i, t.Table)
		}
		seen[t.Table] = true
		if t.HotMonths == 0 {
			return fmt.Errorf("tables[%d].hot_months: required: how many months %s stays in Postgres before it is archived (and dropped, with drop: true)", i, t.Table)
		}
		if t.HotMonths < 1 || t.HotMonths > 1200 {
			return fmt.Errorf("tables[%d].hot_months: %d is outside 1..1200 (the current month is never archived)", i, t.HotMonths)
		}
	}
	switch {
	case c.MaxPartitions < 1 || c.MaxPartitions > 1000:
		return fmt.Errorf("max_partitions: %d is outside 1..1000", c.MaxPartitions)
	case c.PartSizeMB < 5 || c.PartSizeMB > 512:
		return fmt.Errorf("part_size_mb: %d is outside 5..512 (S3 parts are at least 5 MiB)", c.PartSizeMB)
	case c.CompressionLevel < 1 || c.CompressionLevel > 9:
		return fmt.Errorf("compression_level: %d is outside 1..9", c.CompressionLevel)
	case c.LockTimeout < 10*time.Millisecond:
		return fmt.Errorf("lock_timeout: %s is below 10ms", c.LockTimeout)
	case c.LockRetries < 0:
		return errors.New("lock_retries: below 0")
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil {
		return fmt.Errorf("time_zone: %w", err)
	}
	return nil
}

// table returns the config of name, if listed.
func (c Config) table(name string) (TableConfig, bool) {
	for _, t := range c.Tables {
		if t.Table == name {
			return t, true
		}
	}
	return TableConfig{}, false
}

// CheckSpec refuses a run policy under which two movers would routinely meet on one
// partition: runs are kept apart by skip_if_running, shards by running the job as one shard (a
// forced run with more shards moves partitions in shard 0 only). What gets past both (a dead
// letter resent from the dashboard) meets the partition's lock (lockPartition) and skips it.
func (c Config) CheckSpec(s job.Spec) error {
	if s.Overlap != job.OverlapSkipIfRunning {
		return fmt.Errorf("overlap: partition_archive needs %q (two runs at once could move one partition twice), not %q",
			job.OverlapSkipIfRunning, s.Overlap)
	}
	if s.Shards > 1 {
		return fmt.Errorf("shards: partition_archive runs as one shard, not %d", s.Shards)
	}
	return nil
}
