package handlers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/testenv"
)

func TestParseISOWeek(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ week, monday string }{
		{"2026-01", "2025-12-29"}, // week 1 of 2026 starts in 2025
		{"2026-48", "2026-11-23"},
		{"2026-53", "2026-12-28"}, // 2026 starts on a Thursday: 53 weeks
		{"2020-53", "2020-12-28"}, // leap year starting on a Wednesday: 53 weeks
		{"2021-01", "2021-01-04"},
	} {
		got, err := ParseISOWeek(c.week)
		require.NoError(t, err, c.week)
		require.Equal(t, c.monday, got.Format(time.DateOnly), c.week)
		require.Equal(t, c.week, ISOWeekLabel(got))
	}
	for _, bad := range []string{"2027-53", "2026-00", "2026-54", "2026-1", "2026W48", "abcd-ef"} {
		_, err := ParseISOWeek(bad)
		require.Error(t, err, bad)
		require.Error(t, (&GroupActivityArgs{Week: bad}).Validate(), bad)
	}
	require.NoError(t, (&GroupActivityArgs{}).Validate(), "no week: last week")
	require.Equal(t, "2026-53", ISOWeekLabel(ts("2027-01-01T12:00:00Z")))
}

func groupRun(week string, scheduled time.Time) handlertest.Job[GroupActivityArgs] {
	return handlertest.Job[GroupActivityArgs]{Args: GroupActivityArgs{Week: week}, ScheduledAt: scheduled}
}

func TestGroupActivityWeekBounds(t *testing.T) {
	t.Parallel()
	g, err := NewGroupActivity(nil, GroupActivityConfig{}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	for _, c := range []struct {
		scheduled string
		week      string
		from      string
	}{
		{"2026-11-23T02:00:00Z", "2026-47", "2026-11-16T00:00:00Z"}, // the Monday run
		{"2026-11-29T23:59:59Z", "2026-47", "2026-11-16T00:00:00Z"}, // Sunday: still last week
		{"2026-11-30T00:00:00Z", "2026-48", "2026-11-23T00:00:00Z"},
		{"2027-01-04T02:00:00Z", "2026-53", "2026-12-28T00:00:00Z"}, // a week-53 year
		{"2026-01-05T02:00:00Z", "2026-01", "2025-12-29T00:00:00Z"}, // week 1 starts in December
	} {
		week, from, to := g.Week(mustRun(t, GroupActivityKind, groupRun("", ts(c.scheduled))))
		require.Equal(t, c.week, week, c.scheduled)
		require.True(t, from.Equal(ts(c.from)), "%s: from %s", c.scheduled, from)
		require.Equal(t, 7*24*time.Hour, to.Sub(from))
	}
	week, from, _ := g.Week(mustRun(t, GroupActivityKind, groupRun("2026-01", ts("2026-11-26T00:00:00Z"))))
	require.Equal(t, "2026-01", week)
	require.True(t, from.Equal(ts("2025-12-29T00:00:00Z")))

	// In Shanghai the week starts at Monday 00:00 local, Sunday 16:00 UTC.
	sh, err := NewGroupActivity(nil, GroupActivityConfig{TimeZone: "Asia/Shanghai"}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	week, from, _ = sh.Week(mustRun(t, GroupActivityKind, groupRun("", ts("2026-11-22T18:00:00Z")))) // Monday 02:00 on the 23rd there
	require.Equal(t, "2026-47", week)
	require.True(t, from.Equal(ts("2026-11-15T16:00:00Z")), from)
}

type rankRow struct {
	Week    string
	Rank    int
	Channel int64
	Msgs    int64
	Members int64
	Score   int64
}

func rankRows(t *testing.T, s *testenv.Schema) []rankRow {
	t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT stat_week, rank, channel_id, messages, active_members, score
		FROM group_activity_rank ORDER BY stat_week, rank`)
	require.NoError(t, err)
	defer rows.Close()
	var out []rankRow
	for rows.Next() {
		var r rankRow
		require.NoError(t, rows.Scan(&r.Week, &r.Rank, &r.Channel, &r.Msgs, &r.Members, &r.Score))
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

// seedWeek fills ISO week 2026-47 (Mon 2026-11-16 .. Mon 2026-11-23 UTC) with channels whose
// scores tie in the ways the ranking must break deterministically.
func seedWeek(t *testing.T, s *testenv.Schema) {
	for id, kind := range map[int64]int{1: 2, 2: 2, 3: 2, 4: 1, 5: 2, 6: 2, 7: 2} {
		exec(t, s, `INSERT INTO channels (id, name, kind) VALUES ($1, $2, $3)`, id, fmt.Sprintf("ch%d", id), kind)
	}
	at := func(i int) string {
		return ts("2026-11-18T10:00:00Z").Add(time.Duration(i) * time.Minute).Format(time.RFC3339)
	}
	for i := 0; i < 10; i++ { // ch1: 10 messages, 2 senders: 10 + 5*2 = 20
		addMsg(t, s, 1, int64(100+i%2), at(i))
	}
	for i := 0; i < 5; i++ { // ch2: 5 messages, 3 senders: 20, fewer messages than ch1
		addMsg(t, s, 2, int64(100+i%3), at(i))
	}
	for i := 0; i < 4; i++ { // ch3: 4 messages, 4 senders: 24, the leader
		addMsg(t, s, 3, int64(100+i), at(i))
	}
	for i := 0; i < 50; i++ { // ch4 is a direct channel: never ranked
		addMsg(t, s, 4, int64(100+i%2), at(i))
	}
	addMsg(t, s, 5, 100, "2026-11-15T23:59:59Z") // ch5: only just outside the week on both sides
	addMsg(t, s, 5, 100, "2026-11-23T00:00:00Z")
	for i := 0; i < 5; i++ { // ch6: same score and messages as ch2; the lower id ranks first
		addMsg(t, s, 6, int64(200+i%3), at(i))
	}
	addMsg(t, s, 7, 100, "2026-11-16T00:00:00Z") // ch7: the week's first instant counts: 1 + 5 = 6
}

func TestGroupActivityRanksReplacesAndReruns(t *testing.T) {
	s := reportSchema(t)
	seedWeek(t, s)
	ctx := context.Background()
	// Rows of another week must survive; a stale row of this week must go.
	exec(t, s, `INSERT INTO group_activity_rank (stat_week, rank, channel_id, messages, active_members, score, week_start)
		VALUES ('2026-46', 1, 42, 1, 1, 6, '2026-11-09T00:00:00Z'), ('2026-47', 9, 99, 1, 1, 6, '2026-11-16T00:00:00Z')`)
	g, err := NewGroupActivity(s.Pool, GroupActivityConfig{}, time.Now, testenv.Logger(t))
	require.NoError(t, err)

	res, err := handlertest.Run(ctx, g, groupRun("", ts("2026-11-23T02:00:00Z")))
	require.NoError(t, err)
	r := res.(GroupActivityResult)
	require.Equal(t, "2026-47", r.Week)
	require.Equal(t, int64(1), r.Replaced)
	require.Equal(t, 5, r.Ranked)
	want := []rankRow{
		{"2026-46", 1, 42, 1, 1, 6},
		{"2026-47", 1, 3, 4, 4, 24},
		{"2026-47", 2, 1, 10, 2, 20},
		{"2026-47", 3, 2, 5, 3, 20},
		{"2026-47", 4, 6, 5, 3, 20},
		{"2026-47", 5, 7, 1, 1, 6},
	}
	require.Equal(t, want, rankRows(t, s))
	require.Equal(t, RankedChannel{Rank: 1, ChannelID: 3, Messages: 4, ActiveMembers: 4, Score: 24}, r.Leaders[0])
	require.Len(t, r.Leaders, 5)

	// A rerun, as a backfill by parameter, writes the same rows.
	res, err = handlertest.Run(ctx, g, groupRun("2026-47", ts("2026-11-26T21:00:00Z")))
	require.NoError(t, err)
	require.Equal(t, int64(5), res.(GroupActivityResult).Replaced)
	require.Equal(t, want, rankRows(t, s))

	// Top 3: the limit cuts after the tie-break, and replaces the week's five rows.
	g3, err := NewGroupActivity(s.Pool, GroupActivityConfig{Top: 3}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	res, err = handlertest.Run(ctx, g3, groupRun("2026-47", time.Time{}))
	require.NoError(t, err)
	require.Equal(t, 3, res.(GroupActivityResult).Ranked)
	require.Equal(t, want[:4], rankRows(t, s))

	// An empty week ranks nothing and leaves the others alone.
	res, err = handlertest.Run(ctx, g, groupRun("2026-45", time.Time{}))
	require.NoError(t, err)
	require.Equal(t, 0, res.(GroupActivityResult).Ranked)
	require.Equal(t, want[:4], rankRows(t, s))
}

func TestGroupActivityTimeZoneAndPruning(t *testing.T) {
	s := reportSchema(t)
	ctx := context.Background()
	exec(t, s, `INSERT INTO channels (id, name, kind) VALUES (1, 'a', 2)`)
	// Sunday 16:30 UTC is Monday 00:30 in Shanghai: week 47 there, week 46 in UTC.
	addMsg(t, s, 1, 100, "2026-11-15T16:30:00Z")
	addMsg(t, s, 1, 101, "2026-12-10T00:00:00Z")
	sh, err := NewGroupActivity(s.Pool, GroupActivityConfig{TimeZone: "Asia/Shanghai"}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	res, err := handlertest.Run(ctx, sh, groupRun("2026-47", time.Time{}))
	require.NoError(t, err)
	require.Equal(t, 1, res.(GroupActivityResult).Ranked)
	utc, err := NewGroupActivity(s.Pool, GroupActivityConfig{}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	res, err = handlertest.Run(ctx, utc, groupRun("2026-46", time.Time{}))
	require.NoError(t, err)
	require.Equal(t, 1, res.(GroupActivityResult).Ranked)
	require.Equal(t, []rankRow{{"2026-46", 1, 1, 1, 1, 6}, {"2026-47", 1, 1, 1, 1, 6}}, rankRows(t, s))

	// The ranking reads only November's partition of the messages.
	_, from, to := utc.Week(mustRun(t, GroupActivityKind, groupRun("2026-47", time.Time{})))
	var plan []byte
	require.NoError(t, s.Pool.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+utc.insert, "2026-47", from, to, 2, 5, 100).Scan(&plan))
	require.Equal(t, []string{"channels", "chat_messages_2026_11", "group_activity_rank"}, relations(t, plan))
}
