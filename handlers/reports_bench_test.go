package handlers

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/testenv"
)

// BenchmarkDailyStats times one daily_stats run over four months of data (Sep..Dec 2026:
// 2.4 M audit rows, 1.2 M messages, 20 k calls and 10 k messages a day), and the same DAU
// query when the range is hidden behind a function on the column, which defeats pruning.
// go test -run '^$' -bench DailyStats -benchtime 20x ./handlers/
func BenchmarkDailyStats(b *testing.B) {
	s := testenv.NewSchema(b)
	s.ApplyChatSchema(b)
	ctx := context.Background()
	p, err := NewPartition(s.Pool, PartitionConfig{Tables: []string{"chat_messages", "audit_logs"}, Premake: 3},
		func() time.Time { return time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC) }, testenv.Logger(b))
	require.NoError(b, err)
	_, err = handlertest.Run(ctx, p, partitionRun(PartitionArgs{}))
	require.NoError(b, err)
	// Four months, one row every ~4.3 s (audit) and ~8.6 s (messages).
	for _, q := range []string{
		`INSERT INTO audit_logs (user_id, action, created_at)
			SELECT g % 50000, 'GET /api/x', '2026-09-01'::timestamptz + (g * interval '4.32 s') FROM generate_series(0, 2439999) g`,
		`INSERT INTO chat_messages (id, channel_id, seq, sender_id, created_at)
			SELECT g, g % 500, g, g % 50000, '2026-09-01'::timestamptz + (g * interval '8.64 s') FROM generate_series(0, 1219999) g`,
		`INSERT INTO users (id, username, created_at) SELECT g, 'u' || g, '2026-01-01'::timestamptz + (g * interval '7 min')
			FROM generate_series(1, 50000) g`,
		`ANALYZE audit_logs; ANALYZE chat_messages; ANALYZE users`,
	} {
		_, err := s.Pool.Exec(ctx, q)
		require.NoError(b, err)
	}
	require.NoError(b, migrate(ctx, s))
	d, err := NewDailyStats(s.Pool, DailyStatsConfig{}, time.Now, testenv.Logger(b))
	require.NoError(b, err)
	run := dailyRun("2026-11-15", time.Time{})

	b.Run("run", func(b *testing.B) {
		var res DailyStatsResult
		for b.Loop() {
			r, err := handlertest.Run(ctx, d, run)
			require.NoError(b, err)
			res = r.(DailyStatsResult)
		}
		b.ReportMetric(float64(res.DAU), "dau")
		b.Logf("2026-11-15: dau %d, messages %d, qps peak %d", res.DAU, res.Messages, res.APIQPSPeak)
	})
	from, to := ts("2026-11-15T00:00:00Z"), ts("2026-11-16T00:00:00Z")
	b.Run("dau_pruned", func(b *testing.B) {
		for b.Loop() {
			var n int64
			require.NoError(b, s.Pool.QueryRow(ctx, d.q.DAU, from, to).Scan(&n))
		}
	})
	b.Run("dau_unpruned", func(b *testing.B) {
		for b.Loop() {
			var n int64
			// The anti-pattern: a function on the column hides the range from the planner.
			require.NoError(b, s.Pool.QueryRow(ctx, `SELECT count(DISTINCT user_id) FROM audit_logs
				WHERE (created_at AT TIME ZONE 'UTC')::date = $1::date`, "2026-11-15").Scan(&n))
		}
	})
}
