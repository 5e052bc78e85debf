package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
)

// reportSchema is a fresh schema with the chat tables, the ledger's tables (daily_stats,
// group_activity_rank) and monthly partitions Oct 2026 .. Jan 2027 of the partitioned tables,
// made by the pg_partition handler.
func reportSchema(t *testing.T) *testenv.Schema {
	t.Helper()
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	ctx := context.Background()
	require.NoError(t, migrate(ctx, s))
	p, err := NewPartition(s.Pool, PartitionConfig{Tables: []string{"chat_messages", "audit_logs"}},
		func() time.Time { return time.Date(2026, 10, 5, 0, 0, 0, 0, time.UTC) }, testenv.Logger(t))
	require.NoError(t, err)
	_, err = handlertest.Run(ctx, p, partitionRun(PartitionArgs{}))
	require.NoError(t, err)
	return s
}

// migrate applies the ledger's migrations (daily_stats, group_activity_rank) to s.
func migrate(ctx context.Context, s *testenv.Schema) error { return ledger.Migrate(ctx, s.Pool) }

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func exec(t *testing.T, s *testenv.Schema, sql string, args ...any) {
	t.Helper()
	_, err := s.Pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}

func addUser(t *testing.T, s *testenv.Schema, id int64, created string, deleted *string) {
	t.Helper()
	var del any
	if deleted != nil {
		del = ts(*deleted)
	}
	exec(t, s, `INSERT INTO users (id, username, created_at, deleted_at) VALUES ($1, $2, $3, $4)`,
		id, fmt.Sprintf("user%d", id), ts(created), del)
}

func addCall(t *testing.T, s *testenv.Schema, user any, at string) {
	t.Helper()
	exec(t, s, `INSERT INTO audit_logs (user_id, action, created_at) VALUES ($1, 'GET /api/x', $2)`, user, ts(at))
}

var msgID atomic.Int64 // ids only need to be unique within a schema

func addMsg(t *testing.T, s *testenv.Schema, channel, sender int64, at string) {
	t.Helper()
	id := msgID.Add(1)
	exec(t, s, `INSERT INTO chat_messages (id, channel_id, seq, sender_id, created_at) VALUES ($1, $2, $1, $3, $4)`,
		id, channel, sender, ts(at))
}

func addFile(t *testing.T, s *testenv.Schema, id, size int64, at string) {
	t.Helper()
	exec(t, s, `INSERT INTO file_metadata (id, file_hash, bucket, object_path, size_bytes, created_at)
		VALUES ($1, 'h', 'b', 'p', $2, $3)`, id, size, ts(at))
}

// seedDay fills 2026-11-15 (UTC) with known figures and decoys on both sides of it.
func seedDay(t *testing.T, s *testenv.Schema) {
	addUser(t, s, 1, "2026-11-01T00:00:00Z", nil)
	addUser(t, s, 2, "2026-11-15T03:00:00Z", nil)
	addUser(t, s, 3, "2026-11-15T23:59:59.999Z", nil)
	addUser(t, s, 4, "2026-11-16T00:00:00Z", nil)                         // next day
	addUser(t, s, 5, "2026-10-01T00:00:00Z", ptr("2026-11-15T12:00:00Z")) // gone by the end of the day
	addUser(t, s, 6, "2026-10-01T00:00:00Z", ptr("2026-11-16T01:00:00Z")) // still there at midnight
	addUser(t, s, 7, "2026-11-14T23:59:59.999Z", nil)                     // previous day
	for _, at := range []string{"2026-11-15T10:00:00Z", "2026-11-15T10:00:00.5Z", "2026-11-15T10:00:01Z"} {
		addCall(t, s, 1, at)
	}
	for _, at := range []string{"2026-11-15T12:00:05.1Z", "2026-11-15T12:00:05.2Z", "2026-11-15T12:00:05.3Z", "2026-11-15T12:00:05.4Z"} {
		addCall(t, s, 2, at)
	}
	addCall(t, s, nil, "2026-11-15T12:00:05.9Z") // anonymous: counts for QPS, not DAU
	addCall(t, s, 3, "2026-11-15T00:00:00Z")     // the first instant belongs to the day
	addCall(t, s, 9, "2026-11-14T23:59:59.999Z")
	addCall(t, s, 8, "2026-11-16T00:00:00Z")
	for i, at := range []string{"2026-11-15T00:00:00Z", "2026-11-15T01:00:00Z", "2026-11-15T05:00:00Z",
		"2026-11-15T09:00:00Z", "2026-11-15T13:00:00Z", "2026-11-15T20:00:00Z", "2026-11-15T23:59:59.999Z"} {
		addMsg(t, s, int64(i%3+1), 1, at)
	}
	addMsg(t, s, 1, 1, "2026-11-14T23:59:59Z")
	addMsg(t, s, 1, 1, "2026-11-16T00:00:00Z")
	addFile(t, s, 1, 100, "2026-11-15T01:00:00Z")
	addFile(t, s, 2, 250, "2026-11-15T11:00:00Z")
	addFile(t, s, 3, 1000, "2026-11-15T23:00:00Z")
	addFile(t, s, 4, 5000, "2026-11-14T23:00:00Z")
	addFile(t, s, 5, 7000, "2026-11-16T00:00:00Z")
	// Freed by the GC that day: 400 bytes. An object already gone freed nothing; other days' do
	// not count.
	for _, g := range []struct {
		bytes   int64
		missing bool
		at      string
	}{{300, false, "2026-11-15T00:00:00Z"}, {100, false, "2026-11-15T23:59:59Z"}, {9000, true, "2026-11-15T12:00:00Z"},
		{50, false, "2026-11-14T23:59:59Z"}, {60, false, "2026-11-16T00:00:00Z"}} {
		exec(t, s, `INSERT INTO gc_log (file_id, file_hash, bucket, object_path, bytes, object_missing, deleted_at)
			VALUES (1, 'h', 'b', 'p', $1, $2, $3)`, g.bytes, g.missing, ts(g.at))
	}
}

func dailyRun(date string, scheduled time.Time) handlertest.Job[DailyStatsArgs] {
	return handlertest.Job[DailyStatsArgs]{Args: DailyStatsArgs{Date: date}, ScheduledAt: scheduled}
}

type statsRow struct {
	Date                                         string
	TZ                                           string
	Total, DAU, Messages, NewUsers, Storage, QPS int64
	PeakAt                                       *time.Time
}

func dailyRows(t *testing.T, s *testenv.Schema) []statsRow {
	t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT stat_date::text, time_zone, total_users, active_users,
		total_msgs, new_users, storage_usage, api_qps_peak, api_qps_peak_at FROM daily_stats ORDER BY stat_date`)
	require.NoError(t, err)
	defer rows.Close()
	var out []statsRow
	for rows.Next() {
		var r statsRow
		var qps int32 // the design's INT
		require.NoError(t, rows.Scan(&r.Date, &r.TZ, &r.Total, &r.DAU, &r.Messages, &r.NewUsers, &r.Storage, &qps, &r.PeakAt))
		r.QPS = int64(qps)
		if r.PeakAt != nil {
			u := r.PeakAt.UTC()
			r.PeakAt = &u
		}
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestDailyStatsExactFiguresAndRerun(t *testing.T) {
	s := reportSchema(t)
	seedDay(t, s)
	ctx := context.Background()
	d, err := NewDailyStats(s.Pool, DailyStatsConfig{}, time.Now, testenv.Logger(t))
	require.NoError(t, err)

	// The scheduled run at 01:00 on the 16th reports the 15th.
	res, err := handlertest.Run(ctx, d, dailyRun("", ts("2026-11-16T01:00:00Z")))
	require.NoError(t, err)
	peak := ts("2026-11-15T12:00:05Z")
	want := DailyStatsResult{Date: "2026-11-15", TimeZone: "UTC",
		From: ts("2026-11-15T00:00:00Z"), To: ts("2026-11-16T00:00:00Z"),
		TotalUsers: 5, DAU: 3, Messages: 7, NewUsers: 2, StorageAddedBytes: 1350, StorageFreedBytes: 400,
		StorageUsage: 950, APIQPSPeak: 5, APIQPSPeakAt: &peak}
	got := res.(DailyStatsResult)
	got.From, got.To = got.From.UTC(), got.To.UTC()
	require.Equal(t, want, got)
	wantRow := []statsRow{{Date: "2026-11-15", TZ: "UTC", Total: 5, DAU: 3, Messages: 7, NewUsers: 2, Storage: 950, QPS: 5, PeakAt: &peak}}
	require.Equal(t, wantRow, dailyRows(t, s))

	// A rerun, here as a backfill through the date parameter, changes nothing.
	res, err = handlertest.Run(ctx, d, dailyRun("2026-11-15", ts("2026-11-26T21:00:00Z")))
	require.NoError(t, err)
	require.True(t, res.(DailyStatsResult).Replaced)
	require.Equal(t, wantRow, dailyRows(t, s))

	// The result JSON is what the ledger stores.
	b, err := json.Marshal(res)
	require.NoError(t, err)
	require.Contains(t, string(b), `"api_qps_peak":5`)

	// A backfill of an empty day writes zeros and no peak second; the other day is untouched.
	res, err = handlertest.Run(ctx, d, dailyRun("2026-10-20", time.Time{}))
	require.NoError(t, err)
	require.Equal(t, int64(0), res.(DailyStatsResult).APIQPSPeak)
	rows := dailyRows(t, s)
	require.Len(t, rows, 2)
	require.Equal(t, statsRow{Date: "2026-10-20", TZ: "UTC", Total: 2}, rows[0]) // users 5 and 6
	require.Equal(t, wantRow[0], rows[1])
}

func TestDailyStatsTimeZoneBoundaries(t *testing.T) {
	s := reportSchema(t)
	ctx := context.Background()
	// 23:30 UTC on the 15th is 07:30 on the 16th in Shanghai (UTC+8).
	addMsg(t, s, 1, 1, "2026-11-15T23:30:00Z")
	addMsg(t, s, 1, 1, "2026-11-15T16:00:00Z")   // 00:00 on the 16th there: included
	addMsg(t, s, 1, 1, "2026-11-15T15:59:59.9Z") // 23:59:59.9 on the 15th there: excluded
	addMsg(t, s, 1, 1, "2026-11-16T16:00:00Z")   // 00:00 on the 17th there: excluded
	addCall(t, s, 1, "2026-11-15T23:30:00Z")
	addUser(t, s, 1, "2026-11-15T23:30:00Z", nil)

	d, err := NewDailyStats(s.Pool, DailyStatsConfig{TimeZone: "Asia/Shanghai"}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	// 01:00 on the 17th in Shanghai is 17:00 UTC on the 16th.
	res, err := handlertest.Run(ctx, d, dailyRun("", ts("2026-11-16T17:00:00Z")))
	require.NoError(t, err)
	r := res.(DailyStatsResult)
	require.Equal(t, "2026-11-16", r.Date)
	require.True(t, r.From.Equal(ts("2026-11-15T16:00:00Z")), r.From)
	require.True(t, r.To.Equal(ts("2026-11-16T16:00:00Z")), r.To)
	require.Equal(t, int64(2), r.Messages)
	require.Equal(t, int64(1), r.DAU)
	require.Equal(t, int64(1), r.NewUsers)
	require.Equal(t, "Asia/Shanghai", dailyRows(t, s)[0].TZ)

	// The same rows in UTC: the 23:30 one belongs to the 15th.
	u, err := NewDailyStats(s.Pool, DailyStatsConfig{}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	res, err = handlertest.Run(ctx, u, dailyRun("2026-11-15", time.Time{}))
	require.NoError(t, err)
	require.Equal(t, int64(3), res.(DailyStatsResult).Messages)
	require.Equal(t, int64(1), res.(DailyStatsResult).DAU)
}

func TestDailyStatsDayBoundsAcrossDST(t *testing.T) {
	t.Parallel()
	d, err := NewDailyStats(nil, DailyStatsConfig{TimeZone: "Europe/Berlin"}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	// 2026-10-25 is 25 hours long in Berlin (clocks go back).
	date, from, to := d.Day(mustRun(t, DailyStatsKind, dailyRun("2026-10-25", time.Time{})))
	require.Equal(t, "2026-10-25", date)
	require.Equal(t, 25*time.Hour, to.Sub(from))
	// No date: the day before the scheduled time, in the zone.
	date, _, _ = d.Day(mustRun(t, DailyStatsKind, dailyRun("", ts("2026-11-01T00:30:00Z")))) // 01:30 on Nov 1 in Berlin
	require.Equal(t, "2026-10-31", date)
}

// relations lists every "Relation Name" of an EXPLAIN (FORMAT JSON) plan.
func relations(t *testing.T, plan []byte) []string {
	t.Helper()
	var doc any
	require.NoError(t, json.Unmarshal(plan, &doc))
	set := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if n, ok := x["Relation Name"].(string); ok {
				set[n] = true
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(doc)
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// TestDailyStatsQueriesPruneToTheDaysPartition proves with EXPLAIN that each query on a
// partitioned table reads only the partition of the day's month: Oct, Dec and Jan and the
// default partition exist and hold rows, and are not in the plan.
func TestDailyStatsQueriesPruneToTheDaysPartition(t *testing.T) {
	s := reportSchema(t)
	seedDay(t, s)
	addMsg(t, s, 1, 1, "2026-10-10T00:00:00Z")
	addMsg(t, s, 1, 1, "2026-12-10T00:00:00Z")
	addMsg(t, s, 1, 1, "2030-01-01T00:00:00Z") // default partition
	addCall(t, s, 1, "2026-10-10T00:00:00Z")
	addCall(t, s, 1, "2030-01-01T00:00:00Z")
	ctx := context.Background()
	d, err := NewDailyStats(s.Pool, DailyStatsConfig{}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	from, to := ts("2026-11-15T00:00:00Z"), ts("2026-11-16T00:00:00Z")
	for _, c := range []struct {
		sql  string
		want []string
	}{
		{d.q.DAU, []string{"audit_logs_2026_11"}},
		{d.q.QPSPeak, []string{"audit_logs_2026_11"}},
		{d.q.Messages, []string{"chat_messages_2026_11"}},
		{d.q.NewUsers, []string{"users"}},
		{d.q.StorageAdded, []string{"file_metadata"}},
	} {
		var plan []byte
		require.NoError(t, s.Pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+c.sql, from, to).Scan(&plan))
		require.Equal(t, c.want, relations(t, plan), c.sql)
	}

	// A generic plan (what a prepared statement settles on after five runs) prunes at
	// executor start-up instead: the other partitions show up as removed subplans.
	conn, err := s.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, `PREPARE msgs(timestamptz, timestamptz) AS `+d.q.Messages)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `SET plan_cache_mode = force_generic_plan`)
	require.NoError(t, err)
	var plan []byte
	require.NoError(t, conn.QueryRow(ctx, `EXPLAIN (FORMAT JSON) EXECUTE msgs('2026-11-15T00:00:00Z', '2026-11-16T00:00:00Z')`).Scan(&plan))
	require.Equal(t, []string{"chat_messages_2026_11"}, relations(t, plan))
	require.Contains(t, string(plan), `"Subplans Removed": 4`) // Oct, Dec, Jan, default
	_, err = conn.Exec(ctx, `DEALLOCATE msgs; RESET plan_cache_mode`)
	require.NoError(t, err)
}

func TestReportConfigsRefuseBadNames(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cfg  DailyStatsConfig
		want string
	}{
		{DailyStatsConfig{Audit: AuditSource{Table: "audit_logs; DROP TABLE users"}}, "audit_logs.table"},
		{DailyStatsConfig{Users: UsersSource{CreatedAtColumn: `created_at"`}}, "users.created_at_column"},
		{DailyStatsConfig{Files: FilesSource{SizeColumn: "a.b"}}, "files.size_column"},
		{DailyStatsConfig{TimeZone: "Mars/Olympus"}, "time_zone"},
	} {
		err := c.cfg.WithDefaults().Validate()
		require.Error(t, err)
		require.True(t, strings.HasPrefix(err.Error(), c.want), err.Error())
	}
	require.NoError(t, DailyStatsConfig{Users: UsersSource{DeletedAtColumn: "-"}}.WithDefaults().Validate())
	for _, c := range []struct {
		cfg  GroupActivityConfig
		want string
	}{
		{GroupActivityConfig{Channels: ChannelsSource{Table: "x y"}}, "channels.table"},
		{GroupActivityConfig{Messages: GroupMessagesSource{SenderIDColumn: "1x"}}, "messages.sender_id_column"},
		{GroupActivityConfig{Top: -1}, "top"},
	} {
		err := c.cfg.WithDefaults().Validate()
		require.Error(t, err)
		require.True(t, strings.HasPrefix(err.Error(), c.want), err.Error())
	}
	for _, bad := range []string{"2026-11-5", "26-11-05", "2026-13-01", "yesterday"} {
		require.Error(t, (&DailyStatsArgs{Date: bad}).Validate(), bad)
	}
}

// TestDailyStatsSaysWhichTimeIndexIsMissing: without an index on audit_logs' time column the
// run still reports the day, and says which index to create.
func TestDailyStatsSaysWhichTimeIndexIsMissing(t *testing.T) {
	s := reportSchema(t)
	seedDay(t, s)
	ctx := context.Background()
	d, err := NewDailyStats(s.Pool, DailyStatsConfig{}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	res, err := handlertest.Run(ctx, d, dailyRun("2026-11-15", time.Time{}))
	require.NoError(t, err)
	require.Empty(t, res.(DailyStatsResult).IndexWarnings)

	exec(t, s, `DROP INDEX audit_logs_created_at`)
	res, err = handlertest.Run(ctx, d, dailyRun("2026-11-15", time.Time{}))
	require.NoError(t, err)
	got := res.(DailyStatsResult)
	require.Len(t, got.IndexWarnings, 1)
	require.Contains(t, got.IndexWarnings[0], `CREATE INDEX ON "audit_logs" ("created_at")`)
	require.Equal(t, int64(3), got.DAU, "the day is still reported")
}
