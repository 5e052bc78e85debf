package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func noEnv(string) string { return "" }

func TestEnvOverridesSecrets(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"JOBSERVICE_POSTGRES_DSN":          "postgres://env@127.0.0.1/db",
		"JOBSERVICE_ADMIN_TOKEN":           "s3cret",
		"JOBSERVICE_ROCKETMQ_NAME_SERVERS": "a:9876,b:9876",
	}
	cfg, err := parse([]byte("postgres: {dsn: postgres://file@127.0.0.1/db}\n"), func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, "postgres://env@127.0.0.1/db", cfg.Postgres.DSN)
	require.Equal(t, "s3cret", cfg.Admin.Token)
	require.Equal(t, []string{"a:9876", "b:9876"}, cfg.RocketMQ.NameServers)
}

func TestValidateNamesTheKey(t *testing.T) {
	t.Parallel()
	base := "postgres: {dsn: postgres://x@127.0.0.1/db}\n"
	cases := []struct {
		name, yaml, want string
	}{
		{"missing dsn", "log: {level: info}\n", "postgres.dsn"},
		{"typo key", base + "tickr: {interval: 1s}\n", "tickr"},
		{"bad level", base + "log: {level: loud}\n", "log.level"},
		{"bad duration", base + "consumer: {heartbeat_interval: soon}\n", "line 2: cannot unmarshal !!str `soon`"},
		{"bad cron", base + "jobs: {pg_partition: {schedule: 'at noon'}}\n", "jobs.pg_partition.schedule"},
		{"bad zone", base + "jobs: {pg_partition: {schedule: '@daily', time_zone: Nowhere/Land}}\n", "jobs.pg_partition.time_zone"},
		{"stale below heartbeat", base + "consumer: {heartbeat_interval: 5s, stale_after: 6s}\n", "consumer.stale_after"},
		{"queue nums", base + "rocketmq: {queue_nums: 1000}\n", "rocketmq.queue_nums"},
		{"deliver ahead beyond the hold", base + "ticker: {deliver_ahead: 3s}\nconsumer: {early_tolerance: 3s}\n", "ticker.deliver_ahead"},
		{"deliver ahead negative", base + "ticker: {deliver_ahead: -1s}\n", "ticker.deliver_ahead"},
		{"broker gone too soon", base + "ticker: {broker_gone_after: 500ms}\n", "ticker.broker_gone_after"},
		{"broker gone too late", base + "ticker: {broker_gone_after: 1h}\n", "ticker.broker_gone_after"},
		{"schedule topic is the job topic", base + "rocketmq: {topic: JOBS, schedule_topic: JOBS}\n", "rocketmq.schedule_topic"},
		{"schedule topic not a name", base + "rocketmq: {schedule_topic: '%RETRY%x'}\n", "rocketmq.schedule_topic"},
		{"schedule goroutines", base + "consumer: {schedule_goroutines: 5000}\n", "consumer.schedule_goroutines"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse([]byte(tc.yaml), noEnv)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestUnknownJobKindRefused(t *testing.T) {
	t.Parallel()
	cfg, err := parse([]byte("postgres: {dsn: postgres://x@127.0.0.1/db}\njobs: {nightly_magic: {schedule: '@daily'}}\n"), noEnv)
	require.NoError(t, err)
	err = cfg.CheckJobsKnown(func(k string) bool { return k == "sweep" || k == "report" })
	require.EqualError(t, err, "config: jobs.nightly_magic: no such job kind")
}

// FuzzParse checks the loader never panics, and that what it accepts validates.
func FuzzParse(f *testing.F) {
	f.Add([]byte("postgres: {dsn: postgres://x@127.0.0.1/db}\n"))
	f.Add([]byte("postgres: {dsn: x}\njobs: {pg_partition: {schedule: '*/5 * * * * *', shards: 3}}\n"))
	f.Add([]byte("consumer: {heartbeat_interval: -1s}\n"))
	f.Add([]byte("handlers: {sweep: {limit: 1000}}\n"))
	f.Add([]byte("time_zone: Asia/Shanghai\njobs: {sweep: {params: {dry_run: true}}}\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := parse(raw, noEnv)
		if err != nil {
			return
		}
		require.NoError(t, cfg.Validate())
	})
}

// The schedule topic and its group are derived from the job topic and group unless set.
func TestScheduleTopicDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := parse([]byte("postgres: {dsn: postgres://x@127.0.0.1/db}\nrocketmq: {topic: JOBS, consumer_group: workers}\n"), noEnv)
	require.NoError(t, err)
	require.Equal(t, "JOBS_SCHEDULE", cfg.RocketMQ.ScheduleTopic)
	require.Equal(t, "workers-schedule", cfg.RocketMQ.ScheduleGroup())
	require.Equal(t, 32, cfg.Consumer.ScheduleGoroutines)
	cfg, err = parse([]byte("postgres: {dsn: postgres://x@127.0.0.1/db}\nrocketmq: {schedule_topic: FIRES}\n"), noEnv)
	require.NoError(t, err)
	require.Equal(t, "FIRES", cfg.RocketMQ.ScheduleTopic)
	require.Equal(t, "JOB_TOPIC", cfg.RocketMQ.Topic)
}
