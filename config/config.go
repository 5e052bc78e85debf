// Package config loads the one YAML file both binaries read, lays the environment over it
// (every key has a variable), fills defaults and validates every section, naming the key that is wrong.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/chatplat/job-service/alert"
	"github.com/chatplat/job-service/consumer"
	"github.com/chatplat/job-service/filegc"
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
	// TimeZone is the platform's zone (IANA name, default UTC): job schedules and the report
	// days of daily_stats and group_activity follow it unless a job (jobs.<kind>.time_zone)
	// names its own; partition month bounds have their own (handlers.pg_partition.time_zone).
	TimeZone string `yaml:"time_zone"`
	// Jobs maps a job kind to its schedule and run policy. In the file it only overrides: every
	// job of the table (handlers.Table) runs on its own default policy unless jobs.<kind> says
	// otherwise, and enabled: false turns a job's schedule off. After Parse it holds every
	// job's resolved policy.
	Jobs map[string]job.Spec `yaml:"jobs"`
	// Handlers holds each handler's own section as written (handlers.<kind>); Sections holds
	// them decoded, defaults filled and validated, by kind (read them with job.SectionOf).
	Handlers map[string]yaml.Node `yaml:"handlers"`
	Sections map[string]any       `yaml:"-"`
	// Warnings are what the file and the environment set that still works but should change
	// (deprecated keys and variables), each naming what to write instead. The node logs them
	// at start and config check prints them.
	Warnings []string `yaml:"-"`
	// ChatSchema names the chat platform's tables and columns the jobs read, once for all.
	ChatSchema ChatSchema `yaml:"chat_schema"`
	// S3 is the object store of the file GC and of partition_archive.
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
	// DSN is a libpq URL or key=value string.
	DSN string `yaml:"dsn"`
	// MaxConns bounds the node's pool; the ticker's lease holds one connection more.
	MaxConns int32 `yaml:"max_conns"`
}

// AdminConfig is the HTTP admin server.
type AdminConfig struct {
	// Listen is the bind address; loopback by default.
	Listen string `yaml:"listen"`
	// Token is required as a bearer token on write endpoints.
	Token string `yaml:"token"`
	// ProtectReads requires the token on read endpoints too.
	ProtectReads bool `yaml:"protect_reads"`
	// ReadTimeout bounds reading one request, headers and body (default 10s), so a client
	// that sends slowly cannot hold a connection open.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing one response (default 30s).
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes a keep-alive connection idle this long (default 60s).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// TLSCert and TLSKey are PEM files: set, the server speaks HTTPS only, and a certificate
	// replaced on disk is served from the next handshake on (a rotated Secret needs no restart).
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// WithDefaults fills unset fields.
func (a AdminConfig) WithDefaults() AdminConfig {
	if a.Listen == "" {
		a.Listen = "127.0.0.1:8080"
	}
	if a.ReadTimeout == 0 {
		a.ReadTimeout = 10 * time.Second
	}
	if a.WriteTimeout == 0 {
		a.WriteTimeout = 30 * time.Second
	}
	if a.IdleTimeout == 0 {
		a.IdleTimeout = time.Minute
	}
	return a
}

// Validate names the first bad key.
func (a AdminConfig) Validate() error {
	if _, _, err := net.SplitHostPort(a.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port: %w", a.Listen, err)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"read_timeout", a.ReadTimeout}, {"write_timeout", a.WriteTimeout}, {"idle_timeout", a.IdleTimeout}} {
		if d.v < 100*time.Millisecond || d.v > 10*time.Minute {
			return fmt.Errorf("%s: %s is outside 100ms..10m", d.key, d.v)
		}
	}
	if a.ProtectReads && a.Token == "" {
		return errors.New("protect_reads: needs admin.token (or JOBSERVICE_ADMIN__TOKEN); without one nothing could read")
	}
	if (a.TLSCert == "") != (a.TLSKey == "") {
		return errors.New("tls_cert and tls_key: set both (HTTPS) or neither (plain HTTP)")
	}
	return nil
}

// Load reads path, lays the environment over it (every key has a variable, Key.Env), resolves every job of kinds (the
// table of handlers, handlers.Definitions()) against its default policy, fills defaults and
// validates. The error lists every problem, each naming its key.
func Load(path string, env func(string) string, kinds []job.Definition) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(raw, env, kinds)
}

// Parse is Load on bytes.
func Parse(raw []byte, env func(string) string, kinds []job.Definition) (*Config, error) {
	var c Config
	// The file alone first, so its errors carry its own line numbers.
	if err := strictDecode(raw, &c); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	keys := envKeys(kinds)
	warnings, err := overlay(&root, env, keys)
	if err != nil {
		return nil, err
	}
	warnings = append(warnings, deprecatedKeys(&root, keys)...)
	if err := withChatSchema(&root, kinds); err != nil {
		return nil, err
	}
	if root.Kind == yaml.DocumentNode {
		merged, err := yaml.Marshal(&root)
		if err != nil {
			return nil, fmt.Errorf("config: merge the environment and chat_schema: %w", err)
		}
		c = Config{}
		if err := strictDecode(merged, &c); err != nil {
			return nil, fmt.Errorf("config: merge the environment and chat_schema: %w", err)
		}
	}
	c.Warnings = warnings
	if c.TimeZone == "" {
		c.TimeZone = "UTC"
	}
	c.Jobs = withPolicies(c.Jobs, kinds)
	c = c.WithDefaults()
	errs := c.loadSections(kinds)
	errs = append(errs, c.problems()...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &c, nil
}

// strictDecode decodes a whole file: a misspelt key is an error, not a silently ignored
// setting, and an empty file (io.EOF) means all defaults.
func strictDecode(raw []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
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
	c.Admin = c.Admin.WithDefaults()
	c.RocketMQ = c.RocketMQ.WithDefaults()
	if c.Ticker.StuckAfter == 0 {
		// A retry legitimately waits up to retry_backoff_max; a run untouched three times
		// that long lost its message.
		c.Ticker.StuckAfter = 3 * c.Consumer.WithDefaults().RetryBackoffMax
	}
	c.Ticker = c.Ticker.WithDefaults()
	if c.Consumer.EarlyTolerance == 0 {
		// The consumer holds what the broker delivered deliver_ahead early, plus the broker's
		// 1 s timer slot, plus a second of margin.
		c.Consumer.EarlyTolerance = c.Ticker.DeliverAhead + 2*time.Second
	}
	c.Consumer.Node = c.Node
	c.Consumer = c.Consumer.WithDefaults()
	// One notion of "stale" for the whole cluster: the ticker reaps what the consumer would take over.
	if c.Ticker.StaleAfter != c.Consumer.StaleAfter {
		c.Ticker.StaleAfter = c.Consumer.StaleAfter
	}
	if c.TimeZone == "" {
		c.TimeZone = "UTC"
	}
	jobs := make(map[string]job.Spec, len(c.Jobs))
	zone := c.zone()
	for name, s := range c.Jobs {
		if s.TimeZone == "" {
			s.TimeZone = zone
		}
		jobs[name] = s.WithDefaults()
	}
	c.Jobs = jobs
	c.ChatSchema = c.ChatSchema.WithDefaults()
	c.Redis = c.Redis.WithDefaults()
	c.Alerts = c.Alerts.WithDefaults()
	c.Elasticsearch = c.Elasticsearch.WithDefaults()
	c.S3 = c.S3.WithDefaults()
	c.FileGC = c.FileGC.WithDefaults()
	return c
}

// validZone accepts IANA names only: "Local" would make schedules depend on the host.
func validZone(name string) bool {
	if name == "" || name == "Local" {
		return false
	}
	_, err := time.LoadLocation(name)
	return err == nil
}

// zone is the top-level time zone jobs and sections inherit. An invalid one is reported once,
// as time_zone, rather than again under every job that inherits it.
func (c Config) zone() string {
	if !validZone(c.TimeZone) {
		return "UTC"
	}
	return c.TimeZone
}

// Validate checks every section and returns every problem, each naming its key by its path
// in the file.
func (c Config) Validate() error { return errors.Join(c.problems()...) }

func (c Config) problems() []error {
	var errs []error
	add := func(format string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf(format, err))
		}
	}
	if c.Postgres.DSN == "" {
		errs = append(errs, errors.New("config: postgres.dsn: required (or JOBSERVICE_POSTGRES__DSN)"))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("config: log.level: %q is not debug, info, warn or error", c.Log.Level))
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("config: log.format: %q is not json or text", c.Log.Format))
	}
	if c.Postgres.MaxConns < 4 {
		errs = append(errs, fmt.Errorf("config: postgres.max_conns: %d is below 4", c.Postgres.MaxConns))
	}
	if !validZone(c.TimeZone) {
		errs = append(errs, fmt.Errorf("config: time_zone: %q is not an IANA zone name (e.g. UTC, Asia/Shanghai)", c.TimeZone))
	}
	add("config: admin.%w", c.Admin.Validate())
	add("config: rocketmq.%w", c.RocketMQ.Validate())
	add("config: ticker.%w", c.Ticker.Validate())
	add("config: consumer.%w", c.Consumer.Validate())
	// A message delivered deliver_ahead early, and up to one timer slot (1 s by default) earlier
	// still, must be held by the consumer, not sent back to the broker as "early".
	if c.Ticker.DeliverAhead+time.Second > c.Consumer.EarlyTolerance {
		errs = append(errs, fmt.Errorf("config: ticker.deliver_ahead: %s plus the broker's 1 s timer slot exceeds consumer.early_tolerance %s",
			c.Ticker.DeliverAhead, c.Consumer.EarlyTolerance))
	}
	for _, name := range sortedKeys(c.Jobs) {
		if err := c.Jobs[name].Validate(); err != nil {
			errs = append(errs, fmt.Errorf("config: jobs.%s.%w", name, err))
		}
	}
	for _, kind := range sortedKeys(c.Sections) {
		if v, ok := c.Sections[kind].(interface{ Validate() error }); ok {
			add("config: handlers."+kind+".%w", v.Validate())
		}
	}
	add("config: redis.%w", c.Redis.Validate())
	add("config: alerts.%w", c.Alerts.Validate())
	errs = append(errs, c.searchProblems()...)
	add("config: s3.%w", c.S3.Validate())
	add("config: filegc.%w", c.FileGC.Validate())
	if c.FileGC.Enabled && c.S3.Endpoint == "" {
		errs = append(errs, errors.New("config: filegc.enabled: needs s3.endpoint"))
	}
	if c.FileGC.Enabled && c.FileGC.Topic == c.RocketMQ.Topic {
		errs = append(errs, fmt.Errorf("config: filegc.topic: %q is the job topic; file events need their own", c.FileGC.Topic))
	}
	if c.FileGC.Enabled && c.FileGC.Topic == c.RocketMQ.ScheduleTopic {
		errs = append(errs, fmt.Errorf("config: filegc.topic: %q is the schedule topic; file events need their own", c.FileGC.Topic))
	}
	if c.FileGC.Enabled && c.FileGC.Group == c.RocketMQ.ScheduleGroup() {
		errs = append(errs, fmt.Errorf("config: filegc.group: %q is the schedule topic's group (rocketmq.consumer_group + %q)",
			c.FileGC.Group, mq.ScheduleGroupSuffix))
	}
	return errs
}

// CheckJobsKnown refuses schedules for job kinds no handler implements, listing every one.
func (c Config) CheckJobsKnown(known func(string) bool) error {
	var errs []error
	for _, name := range sortedKeys(c.Jobs) {
		if !known(name) {
			errs = append(errs, fmt.Errorf("config: jobs.%s: no such job kind", name))
		}
	}
	return errors.Join(errs...)
}

// Spec returns the policy of a job kind, defaults when it has no section.
func (c Config) Spec(kind string) job.Spec {
	if s, ok := c.Jobs[kind]; ok {
		return s
	}
	return job.Spec{TimeZone: c.TimeZone}.WithDefaults()
}
