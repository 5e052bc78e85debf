package handlers

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
)

// archivePartition does to part what partition_archive does (detach it, and drop it when
// state is dropped) and records it in the archive's manifest as the job would.
func archivePartition(t *testing.T, s *testenv.Schema, parent, part, state string) {
	t.Helper()
	var from, to string
	require.NoError(t, s.Pool.QueryRow(context.Background(), `
		SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid), $$FROM \('([^']*)'\) TO \('([^']*)'\)$$))[1],
			(regexp_match(pg_get_expr(c.relpartbound, c.oid), $$FROM \('([^']*)'\) TO \('([^']*)'\)$$))[2]
		FROM pg_class c WHERE c.oid = to_regclass($1)`, part).Scan(&from, &to))
	exec(t, s, `ALTER TABLE `+parent+` DETACH PARTITION `+part)
	if state == "dropped" {
		exec(t, s, `DROP TABLE `+part)
	}
	exec(t, s, `INSERT INTO partition_archives (parent_schema, parent_table, partition_name, key_column, key_type,
			range_from, range_to, columns, state, bucket, object_key, format)
		VALUES (current_schema(), $1, $2, 'created_at', 'timestamp with time zone', $3, $4, '[]', $5,
			'chat-archive', 'pg/' || $2 || '.csv.gz', 'csv+gzip')`, parent, part, from, to, state)
}

// TestDailyStatsRefusesArchivedDays: a backfill of a day whose messages or audit log have been
// archived (detached or dropped) fails, naming the partitions and how to bring them back, and
// leaves the day's row as it was; zeros never replace good figures.
func TestDailyStatsRefusesArchivedDays(t *testing.T) {
	s := reportSchema(t)
	seedDay(t, s)
	ctx := context.Background()
	d, err := NewDailyStats(s.Pool, DailyStatsConfig{}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	_, err = handlertest.Run(ctx, d, dailyRun("2026-11-15", time.Time{}))
	require.NoError(t, err)
	good := dailyRows(t, s)
	require.Len(t, good, 1)
	require.Equal(t, int64(7), good[0].Messages)

	archivePartition(t, s, "chat_messages", "chat_messages_2026_11", "detached")
	_, err = handlertest.Run(ctx, d, dailyRun("2026-11-15", time.Time{}))
	require.Error(t, err)
	var discard *job.DiscardError
	require.ErrorAs(t, err, &discard, "retrying cannot bring the rows back")
	require.ErrorContains(t, err, "chat_messages_2026_11")
	require.ErrorContains(t, err, "detached")
	require.ErrorContains(t, err, "ATTACH PARTITION")
	require.Equal(t, good, dailyRows(t, s), "the day's row is untouched")

	// Attached back as the error says, the day is reported again, with the same figures.
	exec(t, s, `ALTER TABLE chat_messages ATTACH PARTITION chat_messages_2026_11
		FOR VALUES FROM ('2026-11-01 00:00:00+00') TO ('2026-12-01 00:00:00+00')`)
	_, err = handlertest.Run(ctx, d, dailyRun("2026-11-15", time.Time{}))
	require.NoError(t, err)
	require.Equal(t, good, dailyRows(t, s))

	archivePartition(t, s, "audit_logs", "audit_logs_2026_11", "dropped")
	_, err = handlertest.Run(ctx, d, dailyRun("2026-11-15", time.Time{}))
	require.ErrorContains(t, err, "audit_logs_2026_11")
	require.ErrorContains(t, err, "jobctl archive restore audit_logs audit_logs_2026_11")
	t.Logf("the refusal: %v", err)
	require.Equal(t, good, dailyRows(t, s))

	// Another month's day is still reported.
	_, err = handlertest.Run(ctx, d, dailyRun("2026-10-20", time.Time{}))
	require.NoError(t, err)
}

// TestGroupActivityRefusesArchivedWeeks: the same for a week's ranking; the week's rows stay.
func TestGroupActivityRefusesArchivedWeeks(t *testing.T) {
	s := reportSchema(t)
	seedWeek(t, s)
	ctx := context.Background()
	g, err := NewGroupActivity(s.Pool, GroupActivityConfig{}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	_, err = handlertest.Run(ctx, g, groupRun("2026-47", time.Time{}))
	require.NoError(t, err)
	good := rankRows(t, s)
	require.Len(t, good, 5)

	archivePartition(t, s, "chat_messages", "chat_messages_2026_11", "dropped")
	_, err = handlertest.Run(ctx, g, groupRun("2026-47", time.Time{}))
	require.Error(t, err)
	var discard *job.DiscardError
	require.ErrorAs(t, err, &discard)
	require.ErrorContains(t, err, "chat_messages_2026_11")
	require.ErrorContains(t, err, "jobctl archive restore chat_messages chat_messages_2026_11")
	require.Equal(t, good, rankRows(t, s), "the week's ranking is untouched")
}
