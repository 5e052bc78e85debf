// Package config loads the one YAML file both binaries read, applies environment overrides
// for secrets, fills defaults and validates every section, naming the key that is wrong.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/chatplat/job-service/alert"
	"github.com/chatplat/job-service/consumer"
	"github.com/chatplat/job-service/filegc"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/mq"
	"github.com/chatplat/job-service/ticker"
)

// Config is the whole file. Each section belongs to one component and is documented there.
type Config struct {
	// Node names this process in the ledger and logs; default: the host name.
	Node     string          `yaml:"node"`
	Log      LogConfig       `yaml:"log"`
	Postgres PostgresConfig  `yaml:"postgres"`
	RocketMQ mq.Config       `yaml:"rocketmq"`
	Ticker   ticker.Config   `yaml:"ticker"`
	Consumer consumer.Config `yaml:"consumer"`
	Admin    AdminConfig     `yaml:"admin"`
	Redis    RedisConfig     `yaml:"redis"`
	// Alerts about failed runs; off unless a webhook or SMTP host is set.
	Alerts alert.Config `yaml:"alerts"`
	// Elasticsearch and Neo4j are optional: a node without them starts, and their jobs fail.
	Elasticsearch ElasticsearchConfig `yaml:"elasticsearch"`
	Neo4j         Neo4jConfig         `yaml:"neo4j"`
	// Jobs maps a job kind to its schedule and run policy.
	Jobs     map[string]job.Spec `yaml:"jobs"`
	Handlers HandlersConfig      `yaml:"handlers"`
	// S3 is the object store of the file GC.
	S3 S3Config `yaml:"s3"`
	// FileGC is the event-driven file GC (ref_count=0 events).
	FileGC filegc.Config `yaml:"filegc"`
}

// LogConfig configures slog.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or text
}

// PostgresConfig is the ledger's database (also the chat platform's, for the jobs that read it).
type PostgresConfig struct {
	// DSN is a libpq URL or key=value string (JOBSERVICE_POSTGRES_DSN).
	DSN      string `yaml:"dsn"`
	MaxConns int32  `yaml:"max_conns"`
}

// AdminConfig is the HTTP admin server.
type AdminConfig struct {
	// Listen is the bind address; loopback by default.
	Listen string `yaml:"listen"`
	// Token is required as a bearer token on write endpoints (JOBSERVICE_ADMIN_TOKEN).
	Token string `yaml:"token"`
	// ProtectReads requires the token on read endpoints too.
	ProtectReads bool `yaml:"protect_reads"`
}

// Validate names the first bad key.
func (a AdminConfig) Validate() error {
	if _, _, err := net.SplitHostPort(a.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port: %w", a.Listen, err)
	}
	if a.ProtectReads && a.Token == "" {
		return errors.New("protect_reads: needs admin.token (or JOBSERVICE_ADMIN_TOKEN); without one nothing could read")
	}
	return nil
}

// HandlersConfig holds each handler's own settings.
type HandlersConfig struct {
	Partition        handlers.PartitionConfig        `yaml:"pg_partition"`
	DailyStats       handlers.DailyStatsConfig       `yaml:"daily_stats"`
	GroupActivity    handlers.GroupActivityConfig    `yaml:"group_activity"`
	TokenBlacklist   handlers.TokenBlacklistConfig   `yaml:"token_blacklist"`
	MsgGap           handlers.MsgGapConfig           `yaml:"msg_gap_check"`
	ESForceMerge     handlers.ESForceMergeConfig     `yaml:"es_forcemerge"`
	GraphConsistency handlers.GraphConsistencyConfig `yaml:"graph_consistency"`
	FileGC           handlers.FileGCConfig           `yaml:"file_gc"`
	Retention        handlers.RetentionConfig        `yaml:"ledger_retention"`
}

// Load reads path, applies JOBSERVICE_* overrides from env, fills defaults and validates.
func Load(path string, env func(string) string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(raw, env)
}

// Parse is Load on bytes.
func Parse(raw []byte, env func(string) string) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true) // a misspelt key is an error, not a silently ignored setting
	// An empty file (io.EOF) means all defaults.
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	c.applyEnv(env)
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) applyEnv(env func(string) string) {
	if env == nil {
		return
	}
	set := func(key string, dst *string) {
		if v := env(key); v != "" {
			*dst = v
		}
	}
	set("JOBSERVICE_NODE", &c.Node)
	set("JOBSERVICE_POSTGRES_DSN", &c.Postgres.DSN)
	set("JOBSERVICE_ROCKETMQ_ACCESS_KEY", &c.RocketMQ.AccessKey)
	set("JOBSERVICE_ROCKETMQ_SECRET_KEY", &c.RocketMQ.SecretKey)
	set("JOBSERVICE_ADMIN_TOKEN", &c.Admin.Token)
	set("JOBSERVICE_ADMIN_LISTEN", &c.Admin.Listen)
	set("JOBSERVICE_REDIS_PASSWORD", &c.Redis.Password)
	set("JOBSERVICE_SMTP_PASSWORD", &c.Alerts.SMTP.Password)
	c.applyS3Env(env)
	if v := env("JOBSERVICE_ROCKETMQ_NAME_SERVERS"); v != "" {
		c.RocketMQ.NameServers = strings.Split(v, ",")
	}
	c.applySearchEnv(env)
}

// WithDefaults fills every unset field.
func (c Config) WithDefaults() Config {
	if c.Node == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "node"
		}
		c.Node = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.Postgres.MaxConns == 0 {
		c.Postgres.MaxConns = 20
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = "127.0.0.1:8080"
	}
	c.RocketMQ = c.RocketMQ.WithDefaults()
	c.Ticker = c.Ticker.WithDefaults()
	c.Consumer.Node = c.Node
	c.Consumer = c.Consumer.WithDefaults()
	// One notion of "stale" for the whole cluster: the ticker reaps what the consumer would take over.
	if c.Ticker.StaleAfter != c.Consumer.StaleAfter {
		c.Ticker.StaleAfter = c.Consumer.StaleAfter
	}
	jobs := make(map[string]job.Spec, len(c.Jobs))
	for name, s := range c.Jobs {
		jobs[name] = s.WithDefaults()
	}
	c.Jobs = jobs
	c.Handlers.Partition = c.Handlers.Partition.WithDefaults()
	c.Handlers.DailyStats = c.Handlers.DailyStats.WithDefaults()
	c.Handlers.GroupActivity = c.Handlers.GroupActivity.WithDefaults()
	c.Handlers.TokenBlacklist = c.Handlers.TokenBlacklist.WithDefaults()
	c.Handlers.MsgGap = c.Handlers.MsgGap.WithDefaults()
	c.Redis = c.Redis.WithDefaults()
	c.Alerts = c.Alerts.WithDefaults()
	c.Elasticsearch = c.Elasticsearch.WithDefaults()
	c.Handlers.ESForceMerge = c.Handlers.ESForceMerge.WithDefaults()
	c.Handlers.GraphConsistency = c.Handlers.GraphConsistency.WithDefaults()
	c.Handlers.FileGC = c.Handlers.FileGC.WithDefaults()
	c.Handlers.Retention = c.Handlers.Retention.WithDefaults()
	c.S3 = c.S3.WithDefaults()
	c.FileGC = c.FileGC.WithDefaults()
	return c
}

// Validate checks every section and names the first bad key by its path in the file.
func (c Config) Validate() error {
	if c.Postgres.DSN == "" {
		return errors.New("config: postgres.dsn: required (or JOBSERVICE_POSTGRES_DSN)")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log.level: %q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		return fmt.Errorf("config: log.format: %q is not json or text", c.Log.Format)
	}
	if c.Postgres.MaxConns < 4 {
		return fmt.Errorf("config: postgres.max_conns: %d is below 4", c.Postgres.MaxConns)
	}
	if err := c.Admin.Validate(); err != nil {
		return fmt.Errorf("config: admin.%w", err)
	}
	if err := c.RocketMQ.Validate(); err != nil {
		return fmt.Errorf("config: rocketmq.%w", err)
	}
	if err := c.Ticker.Validate(); err != nil {
		return fmt.Errorf("config: ticker.%w", err)
	}
	if err := c.Consumer.Validate(); err != nil {
		return fmt.Errorf("config: consumer.%w", err)
	}
	for name, s := range c.Jobs {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("config: jobs.%s.%w", name, err)
		}
	}
	if err := c.Handlers.Partition.Validate(); err != nil {
		return fmt.Errorf("config: handlers.pg_partition.%w", err)
	}
	if err := c.Handlers.DailyStats.Validate(); err != nil {
		return fmt.Errorf("config: handlers.daily_stats.%w", err)
	}
	if err := c.Handlers.GroupActivity.Validate(); err != nil {
		return fmt.Errorf("config: handlers.group_activity.%w", err)
	}
	if err := c.Handlers.TokenBlacklist.Validate(); err != nil {
		return fmt.Errorf("config: handlers.token_blacklist.%w", err)
	}
	if err := c.Handlers.MsgGap.Validate(); err != nil {
		return fmt.Errorf("config: handlers.msg_gap_check.%w", err)
	}
	if err := c.Redis.Validate(); err != nil {
		return fmt.Errorf("config: redis.%w", err)
	}
	if err := c.Alerts.Validate(); err != nil {
		return fmt.Errorf("config: alerts.%w", err)
	}
	if err := c.validateSearch(); err != nil {
		return err
	}
	if err := c.Handlers.FileGC.Validate(); err != nil {
		return fmt.Errorf("config: handlers.file_gc.%w", err)
	}
	if err := c.Handlers.Retention.Validate(); err != nil {
		return fmt.Errorf("config: handlers.ledger_retention.%w", err)
	}
	if err := c.S3.Validate(); err != nil {
		return fmt.Errorf("config: s3.%w", err)
	}
	if err := c.FileGC.Validate(); err != nil {
		return fmt.Errorf("config: filegc.%w", err)
	}
	if c.FileGC.Enabled && c.S3.Endpoint == "" {
		return errors.New("config: filegc.enabled: needs s3.endpoint")
	}
	if c.FileGC.Enabled && c.FileGC.Topic == c.RocketMQ.Topic {
		return fmt.Errorf("config: filegc.topic: %q is the job topic; file events need their own", c.FileGC.Topic)
	}
	return nil
}

// CheckJobsKnown refuses schedules for job kinds no handler implements.
func (c Config) CheckJobsKnown(known func(string) bool) error {
	for name := range c.Jobs {
		if !known(name) {
			return fmt.Errorf("config: jobs.%s: no such job kind", name)
		}
	}
	return nil
}

// Spec returns the policy of a job kind, defaults when it has no section.
func (c Config) Spec(kind string) job.Spec {
	if s, ok := c.Jobs[kind]; ok {
		return s
	}
	return job.Spec{}.WithDefaults()
}
