package config

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func noEnv(string) string { return "" }

func TestExampleConfigsLoad(t *testing.T) {
	t.Parallel()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "configs")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		if filepath.Ext(e.Name()) != ".yaml" {
			continue
		}
		env := func(k string) string {
			// The production example leaves secrets to the environment.
			return map[string]string{"JOBSERVICE_POSTGRES_DSN": "postgres://x@127.0.0.1/db",
				"JOBSERVICE_ADMIN_TOKEN": "from-the-environment"}[k]
		}
		cfg, err := Load(filepath.Join(dir, e.Name()), env)
		require.NoError(t, err, e.Name())
		require.NotEmpty(t, cfg.Jobs, e.Name())
		n++
	}
	require.Positive(t, n)
}

func TestEnvOverridesSecrets(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"JOBSERVICE_POSTGRES_DSN":          "postgres://env@127.0.0.1/db",
		"JOBSERVICE_ADMIN_TOKEN":           "s3cret",
		"JOBSERVICE_ROCKETMQ_NAME_SERVERS": "a:9876,b:9876",
	}
	cfg, err := Parse([]byte("postgres: {dsn: postgres://file@127.0.0.1/db}\n"), func(k string) string { return env[k] })
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
		{"sql in table name", base + "handlers: {pg_partition: {tables: ['chat_messages; DROP TABLE users']}}\n", "handlers.pg_partition.tables"},
		{"quoted table name", base + "handlers: {pg_partition: {tables: ['\"users\"']}}\n", "handlers.pg_partition.tables"},
		{"premake", base + "handlers: {pg_partition: {premake: 100}}\n", "handlers.pg_partition.premake"},
		{"queue nums", base + "rocketmq: {queue_nums: 1000}\n", "rocketmq.queue_nums"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.yaml), noEnv)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestUnknownJobKindRefused(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte("postgres: {dsn: postgres://x@127.0.0.1/db}\njobs: {nightly_magic: {schedule: '@daily'}}\n"), noEnv)
	require.NoError(t, err)
	err = cfg.CheckJobsKnown(func(k string) bool { return k == "pg_partition" })
	require.ErrorContains(t, err, "jobs.nightly_magic")
}

// FuzzParse checks the loader never panics, and that what it accepts validates.
func FuzzParse(f *testing.F) {
	f.Add([]byte("postgres: {dsn: postgres://x@127.0.0.1/db}\n"))
	f.Add([]byte("postgres: {dsn: x}\njobs: {pg_partition: {schedule: '*/5 * * * * *', shards: 3}}\n"))
	f.Add([]byte("consumer: {heartbeat_interval: -1s}\n"))
	f.Add([]byte("handlers: {pg_partition: {tables: [a.b.c]}}\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := Parse(raw, noEnv)
		if err != nil {
			return
		}
		require.NoError(t, cfg.Validate())
	})
}
