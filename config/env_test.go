package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Every key has a variable by one rule: JOBSERVICE_ + the path upper-cased, levels joined by
// a double underscore; sections the file lacks are created, lists are comma-separated, maps
// and lists of sections YAML.
func TestEveryKeyFromTheEnvironment(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"JOBSERVICE_POSTGRES__DSN":             "postgres://env@127.0.0.1/db",
		"JOBSERVICE_REDIS__ADDR":               "redis-b.chat:6380",
		"JOBSERVICE_REDIS__DB":                 "3",
		"JOBSERVICE_ALERTS__SMTP__HOST":        "mail.chat",
		"JOBSERVICE_ALERTS__SMTP__FROM":        "jobs@chat.example",
		"JOBSERVICE_ALERTS__SMTP__USERNAME":    "jobs",
		"JOBSERVICE_ALERTS__SMTP__TO":          "a@chat.example, b@chat.example",
		"JOBSERVICE_ALERTS__SMTP__PASSWORD":    "0123", // a string, whatever it looks like
		"JOBSERVICE_ROCKETMQ__NAME_SERVERS":    "ns-0:9876,ns-1:9876",
		"JOBSERVICE_TICKER__ENABLED":           "false",
		"JOBSERVICE_CONSUMER__STALE_AFTER":     "90s",
		"JOBSERVICE_TIME_ZONE":                 "Asia/Shanghai",
		"JOBSERVICE_JOBS__SWEEP__SHARDS":       "5",
		"JOBSERVICE_JOBS__SWEEP__PARAMS":       "{max: 7}",
		"JOBSERVICE_HANDLERS__SWEEP__LIMIT":    "42",
		"JOBSERVICE_HANDLERS__REPORT__TOP":     "9",
		"JOBSERVICE_ELASTICSEARCH__ADDRESSES":  "https://es-0:9200",
		"JOBSERVICE_NEO4J__URI":                "neo4j://graph:7687",
		"JOBSERVICE_S3__PATH_STYLE":            "false",
		"JOBSERVICE_FILEGC__PULL_INTERVAL":     "250ms",
		"JOBSERVICE_ADMIN__READ_TIMEOUT":       "5s",
		"JOBSERVICE_ROCKETMQ__QUEUE_NUMS":      "6",
		"JOBSERVICE_LOG__LEVEL":                "debug",
		"JOBSERVICE_HANDLERS__SWEEP__MAX_WAIT": "2m",
	}
	raw := []byte("postgres: {dsn: postgres://file@127.0.0.1/db}\nredis: {addr: 10.0.0.5:6379}\nhandlers:\n  sweep: {limit: 5}\n")
	cfg, err := parse(raw, func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, "postgres://env@127.0.0.1/db", cfg.Postgres.DSN)
	require.Equal(t, "redis-b.chat:6380", cfg.Redis.Addr)
	require.Equal(t, 3, cfg.Redis.DB)
	require.Equal(t, "mail.chat", cfg.Alerts.SMTP.Host)
	require.Equal(t, []string{"a@chat.example", "b@chat.example"}, cfg.Alerts.SMTP.To)
	require.Equal(t, "0123", cfg.Alerts.SMTP.Password)
	require.Equal(t, []string{"ns-0:9876", "ns-1:9876"}, cfg.RocketMQ.NameServers)
	require.False(t, *cfg.Ticker.Enabled)
	require.Equal(t, 90*time.Second, cfg.Consumer.StaleAfter)
	require.Equal(t, 15*time.Second, cfg.Consumer.HeartbeatInterval, "a sixth of stale_after")
	require.Equal(t, "Asia/Shanghai", cfg.TimeZone)
	require.Equal(t, 5, cfg.Jobs["sweep"].Shards)
	require.Equal(t, "0 0 4 * * *", cfg.Jobs["sweep"].Schedule, "the rest of the job's policy stays")
	require.Equal(t, 7, cfg.Jobs["sweep"].Params["max"])
	require.Equal(t, 42, cfg.Sections["sweep"].(*sweepConfig).Limit)
	require.Equal(t, 2*time.Minute, cfg.Sections["sweep"].(*sweepConfig).MaxWait)
	require.Equal(t, "Asia/Shanghai", cfg.Sections["sweep"].(*sweepConfig).TimeZone)
	require.Equal(t, 9, cfg.Sections["report"].(*reportConfig).Top)
	require.Equal(t, []string{"https://es-0:9200"}, cfg.Elasticsearch.Addresses)
	require.Equal(t, "neo4j://graph:7687", cfg.Neo4j.URI)
	require.False(t, *cfg.S3.PathStyle)
	require.Equal(t, 250*time.Millisecond, *cfg.FileGC.PullInterval)
	require.Equal(t, 5*time.Second, cfg.Admin.ReadTimeout)
	require.Equal(t, 6, cfg.RocketMQ.QueueNums)
	require.Equal(t, "debug", cfg.Log.Level)
}

// Every key Keys lists, except those inside list elements, has a variable, and the variable
// names no two keys.
func TestEveryKeyHasOneVariable(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, k := range Keys(testKinds(), true) {
		name := k.Env()
		if name == "" {
			require.Contains(t, k.Path, "[]", "%s has a variable", k.Path)
			continue
		}
		prev, dup := seen[name]
		require.False(t, dup, "%s names %s and %s", name, prev, k.Path)
		seen[name] = k.Path
	}
	require.Equal(t, "redis.addr", seen["JOBSERVICE_REDIS__ADDR"])
	require.Equal(t, "alerts.smtp.password", seen["JOBSERVICE_ALERTS__SMTP__PASSWORD"])
	require.Equal(t, "handlers.sweep.limit", seen["JOBSERVICE_HANDLERS__SWEEP__LIMIT"])
}

// A variable whose value does not fit its key is refused, naming the variable.
func TestBadVariableNamed(t *testing.T) {
	t.Parallel()
	for name, value := range map[string]string{
		"JOBSERVICE_REDIS__DB":              "three",
		"JOBSERVICE_CONSUMER__STALE_AFTER":  "soon",
		"JOBSERVICE_JOBS__SWEEP__PARAMS":    "[not, a, map",
		"JOBSERVICE_HANDLERS__SWEEP__LIMIT": "many",
	} {
		_, err := parse([]byte(base), func(k string) string {
			if k == name {
				return value
			}
			return ""
		})
		require.ErrorContains(t, err, name, name)
	}
}

// The names of the previous release still work, with a warning naming the new one; the new
// one wins when both are set.
func TestDeprecatedVariables(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"JOBSERVICE_POSTGRES_DSN":          "postgres://old@127.0.0.1/db",
		"JOBSERVICE_SMTP_PASSWORD":         "old-smtp",
		"JOBSERVICE_ROCKETMQ_NAME_SERVERS": "a:9876,b:9876",
		"JOBSERVICE_ADMIN_TOKEN":           "old-token",
		"JOBSERVICE_ADMIN__TOKEN":          "new-token",
	}
	cfg, err := parse(nil, func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, "postgres://old@127.0.0.1/db", cfg.Postgres.DSN)
	require.Equal(t, "old-smtp", cfg.Alerts.SMTP.Password)
	require.Equal(t, []string{"a:9876", "b:9876"}, cfg.RocketMQ.NameServers)
	require.Equal(t, "new-token", cfg.Admin.Token)
	require.Contains(t, cfg.Warnings, "JOBSERVICE_POSTGRES_DSN is deprecated: rename it JOBSERVICE_POSTGRES__DSN (it still sets postgres.dsn in this release)")
	require.Contains(t, cfg.Warnings, "JOBSERVICE_SMTP_PASSWORD is deprecated: rename it JOBSERVICE_ALERTS__SMTP__PASSWORD (it still sets alerts.smtp.password in this release)")
	require.Contains(t, cfg.Warnings, "JOBSERVICE_ADMIN_TOKEN is deprecated and ignored: JOBSERVICE_ADMIN__TOKEN is set too (it wins)")
}

// Keys removed from the engine still load for one release, each with a warning naming what to
// set instead; the ones that were honoured still are.
func TestDeprecatedKeys(t *testing.T) {
	t.Parallel()
	cfg, err := parse([]byte(base+`
node: n1
ticker: {stale_after: 5s, lease_timeout: 20s, stuck_after: 45m}
consumer: {node: other, heartbeat_interval: 2s, stale_after: 30s, early_tolerance: 4s,
  consume_batch: 16, ledger_batch: 10, ledger_flushers: 1, schedule_goroutines: 3}
rocketmq: {schedule_topic: FIRES, producer_group: pg}
`), noEnv)
	require.NoError(t, err)
	require.Equal(t, "n1", cfg.Consumer.Node)
	require.Equal(t, 30*time.Second, cfg.Ticker.StaleAfter, "consumer.stale_after")
	require.Equal(t, 20*time.Second, cfg.Ticker.LeaseTimeout)
	require.Equal(t, 45*time.Minute, cfg.Ticker.StuckAfter)
	require.Equal(t, 2*time.Second, cfg.Consumer.HeartbeatInterval)
	require.Equal(t, 4*time.Second, cfg.Consumer.EarlyTolerance)
	require.Equal(t, 16, cfg.Consumer.ConsumeBatch)
	require.Equal(t, 10, cfg.Consumer.LedgerBatch)
	require.Equal(t, 1, cfg.Consumer.LedgerFlushers)
	require.Equal(t, 3, cfg.Consumer.ScheduleGoroutines)
	require.Equal(t, "FIRES", cfg.RocketMQ.ScheduleTopic)
	require.Equal(t, "pg", cfg.RocketMQ.ProducerGroup)
	want := map[string]string{
		"ticker.stale_after":           "consumer.stale_after",
		"ticker.lease_timeout":         "ticker.interval",
		"ticker.stuck_after":           "consumer.retry_backoff_max",
		"consumer.node":                "node (top level)",
		"consumer.heartbeat_interval":  "consumer.stale_after",
		"consumer.early_tolerance":     "ticker.deliver_ahead",
		"consumer.consume_batch":       "consumer.DefaultConsumeBatch",
		"consumer.ledger_batch":        "consumer.DefaultLedgerBatch",
		"consumer.ledger_flushers":     "consumer.DefaultLedgerFlushers",
		"consumer.schedule_goroutines": "consumer.goroutines",
		"rocketmq.schedule_topic":      "rocketmq.topic",
		"rocketmq.producer_group":      "rocketmq.consumer_group",
	}
	require.Len(t, cfg.Warnings, len(want), "%q", cfg.Warnings)
	for key, instead := range want {
		found := false
		for _, w := range cfg.Warnings {
			if len(w) > len(key) && w[:len(key)+1] == key+" " {
				require.Contains(t, w, instead, key)
				found = true
			}
		}
		require.True(t, found, "a warning about %s in %q", key, cfg.Warnings)
	}

	// Unset, they follow the keys they derive from.
	cfg, err = parse([]byte(base+"ticker: {deliver_ahead: 2s, interval: 10s}\nconsumer: {stale_after: 60s, goroutines: 40, retry_backoff_max: 20m}\nrocketmq: {topic: JOBS, consumer_group: workers}\n"), noEnv)
	require.NoError(t, err)
	require.Empty(t, cfg.Warnings)
	require.Equal(t, 10*time.Second, cfg.Consumer.HeartbeatInterval)
	require.Equal(t, 4*time.Second, cfg.Consumer.EarlyTolerance)
	require.Equal(t, 20, cfg.Consumer.ScheduleGoroutines)
	require.Equal(t, 30*time.Second, cfg.Ticker.LeaseTimeout)
	require.Equal(t, 60*time.Second, cfg.Ticker.StaleAfter)
	require.Equal(t, time.Hour, cfg.Ticker.StuckAfter)
	require.Equal(t, "JOBS_SCHEDULE", cfg.RocketMQ.ScheduleTopic)
	require.Equal(t, "workers-producer", cfg.RocketMQ.ProducerGroup)
}

// A JOBSERVICE_ variable that sets no key is named, with the right name when only the
// separator is wrong.
func TestUnknownVariables(t *testing.T) {
	t.Parallel()
	got := UnknownVariables([]string{"JOBSERVICE_REDIS_ADDR=r:6379", "JOBSERVICE_REDIS__ADDR=r:6379",
		"JOBSERVICE_POSTGRES_DSN=x", "JOBSERVICE_FROB=1", "PATH=/bin", "JOBSERVICE_NODE=n"}, testKinds())
	require.Equal(t, []string{
		"JOBSERVICE_REDIS_ADDR sets no key: did you mean JOBSERVICE_REDIS__ADDR?",
		`JOBSERVICE_FROB sets no key (docs/configuration.md, "Environment")`,
	}, got)
}
