package demo

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// counts returns the row count of every chat table, and of the default partitions.
func counts(t *testing.T, s *testenv.Schema) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, table := range []string{"users", "channels", "channel_members", "chat_messages", "audit_logs",
		"file_metadata", "chat_messages_default", "audit_logs_default"} {
		var n int64
		require.NoError(t, s.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
		out[table] = n
	}
	return out
}

func TestSeedChatIsRepeatableAndRealistic(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 26, 21, 30, 0, 0, time.UTC)

	ids, err := SeedChat(ctx, s.Pool, now)
	require.NoError(t, err)
	require.Len(t, ids, Users)
	first := counts(t, s)
	require.Equal(t, int64(Users), first["users"])
	require.Equal(t, int64(Channels), first["channels"])
	require.Equal(t, int64(Files), first["file_metadata"])
	require.Greater(t, first["chat_messages"], int64(1000))
	require.Greater(t, first["audit_logs"], int64(500))
	require.Zero(t, first["chat_messages_default"], "monthly partitions hold every row")
	require.Zero(t, first["audit_logs_default"])

	// Again, an hour later: the same counts.
	ids2, err := SeedChat(ctx, s.Pool, now.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, ids, ids2)
	require.Equal(t, first, counts(t, s))

	// Every message of the last ten days is in November's partition.
	var parts int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(DISTINCT tableoid) FROM chat_messages`).Scan(&parts))
	require.Equal(t, 1, parts)

	// Exactly one gap, in GapChannel, about half an hour old.
	rows, err := s.Pool.Query(ctx, `SELECT channel_id, prev + 1, created_at FROM (
			SELECT channel_id, seq, created_at, lag(seq) OVER (PARTITION BY channel_id ORDER BY seq) AS prev
			FROM chat_messages) x WHERE seq <> prev + 1`)
	require.NoError(t, err)
	type gap struct {
		Channel, Missing int64
		After            time.Time
	}
	var gaps []gap
	for rows.Next() {
		var g gap
		require.NoError(t, rows.Scan(&g.Channel, &g.Missing, &g.After))
		gaps = append(gaps, g)
	}
	require.NoError(t, rows.Err())
	require.Len(t, gaps, 1)
	require.Equal(t, int64(GapChannel), gaps[0].Channel)
	require.WithinDuration(t, now.Add(time.Hour).Add(-29*time.Minute), gaps[0].After, time.Second)

	// GC candidates: deleted, unreferenced, older than a day.
	var collectable int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM file_metadata WHERE status = 2 AND ref_count = 0
		AND updated_at < $1`, now.Add(time.Hour).Add(-24*time.Hour)).Scan(&collectable))
	require.Equal(t, FilesCollect-FilesActive, collectable)

	// The reports have something to say about yesterday.
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	d, err := handlers.NewDailyStats(s.Pool, handlers.DailyStatsConfig{}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	res, err := d.Run(ctx, &job.Run[handlers.DailyStatsArgs]{Envelope: job.Envelope{ScheduledAt: now.Add(time.Hour)}})
	require.NoError(t, err)
	r := res.(handlers.DailyStatsResult)
	require.Equal(t, "2026-11-25", r.Date)
	require.Equal(t, int64(NewUsers), r.NewUsers)
	require.Greater(t, r.DAU, int64(50))
	require.GreaterOrEqual(t, r.APIQPSPeak, int64(40))
	require.Greater(t, r.Messages, int64(0))
	require.Greater(t, r.StorageAddedBytes, int64(0))
	require.Equal(t, int64(Users-3), r.TotalUsers) // three were deleted three days ago
}

func TestSeedChatAcrossAMonthBoundary(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	ctx := context.Background()
	// Ten days back from Dec 3 reaches into November: both months get partitions first.
	_, err := SeedChat(ctx, s.Pool, time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	c := counts(t, s)
	require.Zero(t, c["chat_messages_default"])
	require.Zero(t, c["audit_logs_default"])
	var parts []string
	rows, err := s.Pool.Query(ctx, `SELECT DISTINCT tableoid::regclass::text FROM chat_messages ORDER BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var p string
		require.NoError(t, rows.Scan(&p))
		parts = append(parts, p)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"chat_messages_2026_11", "chat_messages_2026_12"}, parts)
}
