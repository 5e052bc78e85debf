package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
)

// volumeFromEnv is ProductionVolume scaled by VOLUME_MESSAGES (default 1,000,000: iterate
// small on the shared machine; VOLUME_MESSAGES=20000000 is the figure).
func volumeFromEnv(b *testing.B) Volume {
	v := ProductionVolume()
	v.Messages = 1_000_000
	if s := os.Getenv("VOLUME_MESSAGES"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		require.NoError(b, err, "VOLUME_MESSAGES")
		v.Messages = n
	}
	return v
}

// BenchmarkVolumeMsgGap runs msg_gap_check over a full month's chat_messages partition (the
// job's clock is an hour before the month's end, the partition at its fullest) first without
// the created_at index, then with it. Figures per run: wall time, its share of the job's
// 10-minute period, and the Postgres buffers the query touched (EXPLAIN ANALYZE BUFFERS).
// The data lives in a fresh schema, dropped at the end.
func BenchmarkVolumeMsgGap(b *testing.B) {
	ctx := context.Background()
	v := volumeFromEnv(b)
	s := testenv.NewSchema(b)
	s.ApplyChatSchema(b)
	clock := MonthStart(time.Now()).AddDate(0, 1, 0).Add(-time.Hour)
	// The platform writes with the index in place; dropping it first only makes the seed faster.
	_, err := s.Pool.Exec(ctx, `DROP INDEX chat_messages_created_at`)
	require.NoError(b, err)
	t0 := time.Now()
	require.NoError(b, SeedMessageVolume(ctx, s.Pool, v, clock, 1000))
	b.Logf("seeded %d messages in %d channels in %s", v.Messages, v.Channels, time.Since(t0).Round(time.Second))

	h, err := handlers.NewMsgGap(s.Pool, handlers.MsgGapConfig{}, nil, func() time.Time { return clock }, slog.New(slog.DiscardHandler))
	require.NoError(b, err)
	period := 10 * time.Minute
	run := &job.Run[handlers.MsgGapArgs]{Envelope: job.Envelope{Job: handlers.MsgGapKind, RunKey: "volume"}, Attempt: 1}
	var checked [2]int64
	for i, name := range []string{"index=none", "index=created_at"} {
		if i == 1 {
			t0 := time.Now()
			_, err := s.Pool.Exec(ctx, `CREATE INDEX chat_messages_created_at ON chat_messages (created_at)`)
			require.NoError(b, err)
			_, err = s.Pool.Exec(ctx, `ANALYZE chat_messages`)
			require.NoError(b, err)
			b.Logf("created_at index built in %s", time.Since(t0).Round(time.Millisecond))
		}
		b.Run(name, func(b *testing.B) {
			var r handlers.MsgGapResult
			m := startMeasure(b, "msg_gap_check, "+name, fmt.Sprintf("%d messages", v.Messages), period, s)
			for b.Loop() {
				res, err := h.Run(ctx, run)
				if err != nil && !job.IsDiscard(err) {
					require.NoError(b, err)
				}
				r = res.(handlers.MsgGapResult)
			}
			m.stop(fmt.Sprintf("%d runs, %d messages in the window", b.N, r.MessagesChecked))
			checked[i] = r.MessagesChecked
			per := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(per.Milliseconds()), "ms/run")
			b.ReportMetric(100*per.Seconds()/period.Seconds(), "%period")
			b.ReportMetric(float64(queryBuffers(b, s, clock))*8/1024, "MB_buffers")
			b.ReportMetric(float64(r.MessagesChecked), "msgs_in_window")
			b.Logf("%s: time_index=%q warning=%q", name, r.TimeIndex, r.IndexWarning)
		})
	}
	require.Equal(b, checked[0], checked[1], "both plans check the same messages")
}

// queryBuffers runs the job's query under EXPLAIN (ANALYZE, BUFFERS) and returns the shared
// blocks it hit or read.
func queryBuffers(b *testing.B, s *testenv.Schema, clock time.Time) int64 {
	ctx := context.Background()
	q, args, settings := handlers.MsgGapQueryForExplain(handlers.MsgGapConfig{}, clock)
	tx, err := s.Pool.Begin(ctx)
	require.NoError(b, err)
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	for _, kv := range settings {
		_, err = tx.Exec(ctx, `SELECT set_config($1, $2, true)`, kv[0], kv[1])
		require.NoError(b, err)
	}
	var raw []byte
	require.NoError(b, tx.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+q, args...).Scan(&raw))
	if os.Getenv("EXPLAIN") != "" {
		require.NoError(b, os.WriteFile(os.Getenv("EXPLAIN"), raw, 0o644))
	}
	var plan []struct {
		Plan struct {
			Hit  int64 `json:"Shared Hit Blocks"`
			Read int64 `json:"Shared Read Blocks"`
		} `json:"Plan"`
	}
	require.NoError(b, json.Unmarshal(raw, &plan))
	return plan[0].Plan.Hit + plan[0].Plan.Read
}
