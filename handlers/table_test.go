package handlers_test

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/job"
)

const base = "postgres: {dsn: postgres://x@127.0.0.1/db}\n"

func parse(raw string, env func(string) string) (*config.Config, error) {
	return config.Parse([]byte(raw), env, handlers.Definitions())
}

// The design's table: what a config without a jobs section runs, and when.
func TestDefaultPoliciesAreTheDesigns(t *testing.T) {
	t.Parallel()
	cfg, err := parse(base+"time_zone: Asia/Shanghai\n", nil)
	require.NoError(t, err)
	require.ElementsMatch(t, handlers.Kinds(), cfg.Scheduled(), "the eight jobs of the design, partition_archive and ledger_retention run without a jobs section")
	require.Len(t, cfg.Scheduled(), 10)
	sh, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	from := time.Date(2026, 12, 6, 23, 30, 0, 0, sh) // a Sunday, 23:30 Shanghai
	want := map[string]time.Time{
		handlers.DailyStatsKind:       time.Date(2026, 12, 7, 1, 0, 0, 0, sh),
		handlers.PartitionKind:        time.Date(2026, 12, 7, 2, 0, 0, 0, sh),
		handlers.GroupActivityKind:    time.Date(2026, 12, 7, 2, 0, 0, 0, sh), // Monday
		handlers.ESForceMergeKind:     time.Date(2026, 12, 7, 3, 0, 0, 0, sh),
		handlers.FileGCKind:           time.Date(2026, 12, 7, 4, 0, 0, 0, sh),
		handlers.GraphConsistencyKind: time.Date(2026, 12, 7, 5, 0, 0, 0, sh),
		handlers.TokenBlacklistKind:   time.Date(2026, 12, 7, 0, 0, 0, 0, sh),
		handlers.MsgGapKind:           time.Date(2026, 12, 6, 23, 40, 0, 0, sh),
		handlers.PartitionArchiveKind: time.Date(2026, 12, 7, 4, 30, 0, 0, sh),
		handlers.RetentionKind:        time.Date(2026, 12, 7, 3, 30, 0, 0, sh),
	}
	for kind, at := range want {
		s := cfg.Jobs[kind]
		next, ok := s.NextFire(from)
		require.True(t, ok, kind)
		require.True(t, at.Equal(next), "%s: next fire %s, want %s", kind, next, at)
		require.Equal(t, "Asia/Shanghai", s.TimeZone, kind)
		require.Equal(t, 4, s.MaxAttempts, "%s: failure retry count 3", kind)
		require.Equal(t, job.OverlapSkipIfRunning, s.Overlap, kind)
	}
	// The week after: group_activity waits for Monday, the dailies fire every day.
	next, _ := cfg.Jobs[handlers.GroupActivityKind].NextFire(time.Date(2026, 12, 7, 3, 0, 0, 0, sh))
	require.True(t, time.Date(2026, 12, 14, 2, 0, 0, 0, sh).Equal(next))
	require.Equal(t, 3, cfg.Jobs[handlers.FileGCKind].Shards)
	require.Greater(t, cfg.Jobs[handlers.ESForceMergeKind].Timeout,
		job.SectionOf[handlers.ESForceMergeConfig](cfg.Sections, handlers.ESForceMergeKind).IndexTimeout)
	// Report days follow the top-level zone; partitions follow their existing bounds, not it.
	require.Equal(t, "Asia/Shanghai", job.SectionOf[handlers.DailyStatsConfig](cfg.Sections, handlers.DailyStatsKind).TimeZone)
	require.Equal(t, "Asia/Shanghai", job.SectionOf[handlers.GroupActivityConfig](cfg.Sections, handlers.GroupActivityKind).TimeZone)
	require.Empty(t, job.SectionOf[handlers.PartitionConfig](cfg.Sections, handlers.PartitionKind).TimeZone)
	// Archiving counts months where the platform lives: "the current month" is Shanghai's.
	require.Equal(t, "Asia/Shanghai", job.SectionOf[handlers.PartitionArchiveConfig](cfg.Sections, handlers.PartitionArchiveKind).TimeZone)

	// UTC deployments (no time_zone) get the same wall-clock times in UTC.
	cfg, err = parse(base, nil)
	require.NoError(t, err)
	next, _ = cfg.Jobs[handlers.DailyStatsKind].NextFire(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	require.Equal(t, time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC), next)
	require.Equal(t, "UTC", job.SectionOf[handlers.DailyStatsConfig](cfg.Sections, handlers.DailyStatsKind).TimeZone)
}

func TestJobCanBeDisabled(t *testing.T) {
	t.Parallel()
	cfg, err := parse(base+"jobs: {es_forcemerge: {enabled: false}, msg_gap_check: {schedule: '0 */5 * * * *'}}\n", nil)
	require.NoError(t, err)
	require.NotContains(t, cfg.Scheduled(), handlers.ESForceMergeKind)
	require.Len(t, cfg.Scheduled(), 9)
	require.Equal(t, "0 */5 * * * *", cfg.Jobs[handlers.MsgGapKind].Schedule)
	require.Equal(t, 2*time.Minute, cfg.Jobs[handlers.MsgGapKind].Timeout, "the rest of the policy stays")
}

func TestHandlerSectionsNameTheKey(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"handlers: {pg_partition: {tables: ['chat_messages; DROP TABLE users']}}\n": "handlers.pg_partition.tables",
		"handlers: {pg_partition: {tables: ['\"users\"']}}\n":                       "handlers.pg_partition.tables",
		"handlers: {pg_partition: {premake: 100}}\n":                                "handlers.pg_partition.premake",
		"handlers: {msg_gap_check: {table: 'm; DROP TABLE users'}}\n":               "handlers.msg_gap_check.table",
		"handlers: {msg_gap_check: {seq_column: 'seq\"'}}\n":                        "handlers.msg_gap_check.seq_column",
		"handlers: {token_blacklist: {safety_margin: 1s}}\n":                        "handlers.token_blacklist.safety_margin",
		"handlers: {token_blacklist: {batch_size: 1000000}}\n":                      "handlers.token_blacklist.batch_size",
		"handlers: {es_forcemerge: {patterns: ['chat-*,.security']}}\n":             "handlers.es_forcemerge.patterns",
		"handlers: {es_forcemerge: {min_age_days: -1}}\n":                           "handlers.es_forcemerge.min_age_days",
		"handlers: {graph_consistency: {table: 'users; DROP TABLE users'}}\n":       "handlers.graph_consistency.table",
		"handlers: {graph_consistency: {label: 'User`) DETACH DELETE (n'}}\n":       "handlers.graph_consistency.label",
		"handlers: {graph_consistency: {max_deviation: 2}}\n":                       "handlers.graph_consistency.max_deviation",
		"handlers: {daily_stats: {time_zone: Nowhere/Land}}\n":                      "handlers.daily_stats.time_zone",
		"handlers: {file_gc: {grace: 1s}}\n":                                        "handlers.file_gc.grace",
		"handlers: {file_gc: {graec: 1h}}\n":                                        "handlers.file_gc: yaml: unmarshal errors",
		"handlers: {es_forcemerge: {index_timeout: 8h}}\n":                          "jobs.es_forcemerge.timeout: 6h0m0s must be above handlers.es_forcemerge.index_timeout",
		"jobs: {file_gc: {params: {dryrun: true}}}\n":                               `jobs.file_gc.params: json: unknown field "dryrun"`,
		"jobs: {file_gc: {params: {max_deletes: 0}}}\n":                             "jobs.file_gc.params: max_deletes 0 is below 1",
		"jobs: {daily_stats: {params: {date: yesterday}}}\n":                        "jobs.daily_stats.params",
	}
	for yaml, want := range cases {
		_, err := parse(base+yaml, nil)
		require.ErrorContains(t, err, "config: "+want, yaml)
	}
}

func TestHandlerSectionsDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := parse(base+`
handlers:
  token_blacklist: {prefix: "auth:block:token:", max_token_lifetime: 24h}
  msg_gap_check: {window: 2h, settle: 2m}
  es_forcemerge: {min_age_days: 0}
`, nil)
	require.NoError(t, err)
	require.Equal(t, 24*time.Hour, job.SectionOf[handlers.TokenBlacklistConfig](cfg.Sections, handlers.TokenBlacklistKind).MaxTokenLifetime)
	gap := job.SectionOf[handlers.MsgGapConfig](cfg.Sections, handlers.MsgGapKind)
	require.Equal(t, 2*time.Hour, gap.Window)
	require.Equal(t, "chat_messages", gap.Table)
	require.Equal(t, 0, *job.SectionOf[handlers.ESForceMergeConfig](cfg.Sections, handlers.ESForceMergeKind).MinAgeDays, "an explicit 0 is kept")

	cfg, err = parse(base, nil)
	require.NoError(t, err)
	require.Equal(t, 7, *job.SectionOf[handlers.ESForceMergeConfig](cfg.Sections, handlers.ESForceMergeKind).MinAgeDays)
	require.Equal(t, 0.001, *job.SectionOf[handlers.GraphConsistencyConfig](cfg.Sections, handlers.GraphConsistencyKind).MaxDeviation)
}

// Every shipped example config loads with the real table (deploy/ has its own test).
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
			// The production example leaves secrets and server addresses to the environment
			// (its event file GC needs S3).
			return map[string]string{"JOBSERVICE_POSTGRES_DSN": "postgres://x@127.0.0.1/db",
				"JOBSERVICE_ADMIN_TOKEN": "from-the-environment", "JOBSERVICE_S3_ENDPOINT": "s3.example:9000",
				"JOBSERVICE_S3_ACCESS_KEY": "k", "JOBSERVICE_S3_SECRET_KEY": "s"}[k]
		}
		cfg, err := config.Load(filepath.Join(dir, e.Name()), env, handlers.Definitions())
		require.NoError(t, err, e.Name())
		require.NoError(t, cfg.CheckJobsKnown(func(k string) bool {
			_, ok := cfg.Sections[k]
			return ok
		}), e.Name())
		require.Len(t, cfg.Scheduled(), 10, e.Name())
		n++
	}
	require.Positive(t, n)
}

// partition_archive's months are counted in its section's zone, else its job's, else the
// top-level time_zone: a platform in Shanghai archives by Shanghai's months unless told.
func TestPartitionArchiveZoneFollowsTheConfig(t *testing.T) {
	t.Parallel()
	zone := func(raw string) string {
		cfg, err := parse(base+raw, nil)
		require.NoError(t, err)
		return job.SectionOf[handlers.PartitionArchiveConfig](cfg.Sections, handlers.PartitionArchiveKind).TimeZone
	}
	require.Equal(t, "UTC", zone(""))
	require.Equal(t, "Asia/Shanghai", zone("time_zone: Asia/Shanghai\n"))
	require.Equal(t, "Europe/Berlin", zone("time_zone: Asia/Shanghai\njobs: {partition_archive: {time_zone: Europe/Berlin}}\n"))
	require.Equal(t, "America/New_York", zone("time_zone: Asia/Shanghai\njobs: {partition_archive: {time_zone: Europe/Berlin}}\n"+
		"handlers: {partition_archive: {time_zone: America/New_York}}\n"))
}
