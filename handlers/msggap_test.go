package handlers

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
)

var gapNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func TestMsgGapConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, MsgGapConfig{}.WithDefaults().Validate())
	for key, c := range map[string]MsgGapConfig{
		"table":          {Table: "chat_messages; DROP TABLE users"},
		"seq_column":     {SeqColumn: `seq"`},
		"time_column":    {TimeColumn: "created at"},
		"channel_column": {ChannelColumn: "1x"},
		"settle":         {Settle: 2 * time.Hour},
		"window":         {Window: time.Second},
	} {
		require.ErrorContains(t, c.WithDefaults().Validate(), key)
	}
	require.Error(t, (&MsgGapArgs{Window: "forever"}).Validate())
	require.NoError(t, (&MsgGapArgs{Window: "6h"}).Validate())
}

// msgs inserts messages of one channel: seq values at the given ages before gapNow.
func msgs(t *testing.T, s *testenv.Schema, channel int64, ages map[int64]time.Duration) {
	t.Helper()
	for seq, age := range ages {
		_, err := s.Pool.Exec(context.Background(), `INSERT INTO chat_messages (id, channel_id, seq, sender_id, created_at)
			VALUES ($1, $2, $3, 1, $4)`, channel*1_000_000+seq, channel, seq, gapNow.Add(-age))
		require.NoError(t, err)
	}
}

// seqs gives seq values first..last, one minute apart ending at age `newest`.
func seqs(first, last int64, newest time.Duration, skip ...int64) map[int64]time.Duration {
	out := map[int64]time.Duration{}
	skipped := map[int64]bool{}
	for _, s := range skip {
		skipped[s] = true
	}
	for s := first; s <= last; s++ {
		if !skipped[s] {
			out[s] = newest + time.Duration(last-s)*time.Minute
		}
	}
	return out
}

func gapRun() handlertest.Job[MsgGapArgs] {
	return handlertest.Job[MsgGapArgs]{}
}

func newMsgGap(t testing.TB, s *testenv.Schema, cfg MsgGapConfig) *MsgGap {
	t.Helper()
	h, err := NewMsgGap(s.Pool, cfg, func() time.Time { return gapNow }, testenv.Logger(t))
	require.NoError(t, err)
	return h
}

func TestMsgGapNoGapsSucceeds(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	msgs(t, s, 1, seqs(1, 10, 2*time.Minute))
	msgs(t, s, 2, seqs(1, 5, 10*time.Second)) // young but contiguous
	res, err := handlertest.Run(context.Background(), newMsgGap(t, s, MsgGapConfig{}), gapRun())
	require.NoError(t, err)
	r := res.(MsgGapResult)
	require.EqualValues(t, 2, r.ChannelsChecked)
	require.EqualValues(t, 15, r.MessagesChecked)
	require.Zero(t, r.Gaps)
	require.Zero(t, r.Pending)
	require.Empty(t, r.Channels)
}

func TestMsgGapPersistentGapFailsWithExactRanges(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	msgs(t, s, 1, seqs(1, 10, 5*time.Minute, 4, 5, 8)) // missing 4-5 and 8
	msgs(t, s, 2, seqs(1, 4, 5*time.Minute, 3))        // missing 3
	msgs(t, s, 3, seqs(1, 6, 5*time.Minute))           // fine
	res, err := handlertest.Run(context.Background(), newMsgGap(t, s, MsgGapConfig{}), gapRun())
	require.Error(t, err)
	require.True(t, job.IsDiscard(err), "a lost message does not come back on retry")
	fp, ok := job.ProblemOf(err)
	require.True(t, ok)
	require.Equal(t, "gaps:3 gaps in 2 channels: channel 1 missing 4-5, 8; channel 2 missing 3", fp)
	require.Contains(t, err.Error(), "channel 1 missing 4-5, 8; channel 2 missing 3")
	r := res.(MsgGapResult)
	require.EqualValues(t, 3, r.Gaps)
	require.EqualValues(t, 2, r.ChannelsWithGaps)
	require.False(t, r.Truncated)
	require.Len(t, r.Channels, 2)
	require.Equal(t, int64(1), r.Channels[0].Channel)
	require.Equal(t, []SeqRange{
		{From: 4, To: 5, SeenAt: gapNow.Add(-(5 + 4) * time.Minute)},
		{From: 8, To: 8, SeenAt: gapNow.Add(-(5 + 1) * time.Minute)},
	}, normalize(r.Channels[0].Missing))
	require.Equal(t, []SeqRange{{From: 3, To: 3, SeenAt: gapNow.Add(-5 * time.Minute)}}, normalize(r.Channels[1].Missing))
}

func normalize(rs []SeqRange) []SeqRange {
	for i := range rs {
		rs[i].SeenAt = rs[i].SeenAt.UTC()
	}
	return rs
}

func TestMsgGapYoungGapIsNotReported(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	// seq 3 is missing, but seq 4 was written 20 s ago: 3 may still be in flight.
	msgs(t, s, 1, map[int64]time.Duration{1: 10 * time.Minute, 2: 9 * time.Minute, 4: 20 * time.Second})
	res, err := handlertest.Run(context.Background(), newMsgGap(t, s, MsgGapConfig{Settle: time.Minute}), gapRun())
	require.NoError(t, err)
	r := res.(MsgGapResult)
	require.Zero(t, r.Gaps)
	require.EqualValues(t, 1, r.Pending)

	// Once it is older than the settle delay, it is.
	later, err := NewMsgGap(s.Pool, MsgGapConfig{Settle: time.Minute}, func() time.Time { return gapNow.Add(time.Minute) }, testenv.Logger(t))
	require.NoError(t, err)
	res, err = handlertest.Run(context.Background(), later, gapRun())
	require.Error(t, err)
	require.EqualValues(t, 1, res.(MsgGapResult).Gaps)
}

func TestMsgGapWindowBoundary(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	// Window 1h, lookback 24h.
	// Channel 1: 1..3 three hours ago, 6..7 inside the window: 4-5 straddles the window's start.
	msgs(t, s, 1, map[int64]time.Duration{1: 3 * time.Hour, 2: 3 * time.Hour, 3: 3 * time.Hour, 6: 30 * time.Minute, 7: 20 * time.Minute})
	// Channel 2: contiguous across the boundary.
	msgs(t, s, 2, map[int64]time.Duration{1: 2 * time.Hour, 2: 2 * time.Hour, 3: 30 * time.Minute})
	// Channel 3: a gap wholly before the window is an earlier run's business.
	msgs(t, s, 3, map[int64]time.Duration{1: 3 * time.Hour, 3: 3 * time.Hour, 4: 30 * time.Minute})
	// Channel 4: the predecessor is older than the lookback: the first message in the window
	// is taken as is, not compared with the channel's whole history.
	msgs(t, s, 4, map[int64]time.Duration{1: 30 * time.Hour, 9: 30 * time.Minute})
	// Channel 5: only messages before the window.
	msgs(t, s, 5, map[int64]time.Duration{1: 3 * time.Hour, 5: 3 * time.Hour})

	res, err := handlertest.Run(context.Background(), newMsgGap(t, s, MsgGapConfig{Window: time.Hour, BoundaryLookback: 24 * time.Hour}), gapRun())
	require.Error(t, err)
	r := res.(MsgGapResult)
	require.EqualValues(t, 1, r.Gaps, "%+v", r.Channels)
	require.Equal(t, int64(1), r.Channels[0].Channel)
	require.Equal(t, int64(4), r.Channels[0].Missing[0].From)
	require.Equal(t, int64(5), r.Channels[0].Missing[0].To)
	require.EqualValues(t, 4, r.ChannelsChecked) // channels 1-4 have messages in the window

	// A run with a wider window sees the older gaps too.
	wide := handlertest.Job[MsgGapArgs]{RunKey: "wide", Args: MsgGapArgs{Window: "48h"}}
	res, err = handlertest.Run(context.Background(), newMsgGap(t, s, MsgGapConfig{}), wide)
	require.Error(t, err)
	require.Contains(t, err.Error(), "channel 1 missing 4-5; channel 3 missing 2; channel 4 missing 2-8; channel 5 missing 2-4")
	_ = res
}

func TestMsgGapCapsTheListButCountsEverything(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	for ch := int64(1); ch <= 3; ch++ {
		msgs(t, s, ch, seqs(1, 10, 5*time.Minute, 3, 6))
	}
	res, err := handlertest.Run(context.Background(), newMsgGap(t, s, MsgGapConfig{MaxChannels: 2, MaxRanges: 1}), gapRun())
	require.Error(t, err)
	r := res.(MsgGapResult)
	require.EqualValues(t, 6, r.Gaps)
	require.EqualValues(t, 3, r.ChannelsWithGaps)
	require.True(t, r.Truncated)
	require.Len(t, r.Channels, 2)
	for _, c := range r.Channels {
		require.Len(t, c.Missing, 1)
		require.Equal(t, int64(3), c.Missing[0].From)
	}
	require.True(t, strings.HasSuffix(err.Error(), "more not listed"), err.Error())
}

// TestMsgGapQueryPrunesPartitions checks the plan touches only the partitions of the window
// and the lookback, not every month of history.
func TestMsgGapQueryPrunesPartitions(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	ctx := context.Background()
	for _, m := range []string{"2026_09", "2026_10", "2026_11", "2026_12"} {
		y, mo := m[:4], m[5:]
		_, err := s.Pool.Exec(ctx, fmt.Sprintf(`CREATE TABLE chat_messages_%s PARTITION OF chat_messages
			FOR VALUES FROM ('%s-%s-01') TO ('%s-%s-01'::date + interval '1 month')`, m, y, mo, y, mo))
		require.NoError(t, err)
	}
	msgs(t, s, 1, seqs(1, 5, 5*time.Minute, 2))
	h := newMsgGap(t, s, MsgGapConfig{})
	var plan strings.Builder
	from := gapNow.Add(-time.Hour)
	rows, err := s.Pool.Query(ctx, "EXPLAIN "+h.query(), from, gapNow, from.Add(-24*time.Hour), gapNow.Add(-time.Minute), 50, 20)
	require.NoError(t, err)
	for rows.Next() {
		var line string
		require.NoError(t, rows.Scan(&line))
		plan.WriteString(line + "\n")
	}
	require.NoError(t, rows.Err())
	require.Contains(t, plan.String(), "chat_messages_2026_11")
	for _, other := range []string{"chat_messages_2026_09", "chat_messages_2026_10", "chat_messages_2026_12", "chat_messages_default"} {
		require.NotContains(t, plan.String(), other, plan.String())
	}
	_, err = handlertest.Run(ctx, h, gapRun())
	require.ErrorContains(t, err, "channel 1 missing 2")
}

// BenchmarkMsgGapCheck times one run over a window of 500,000 messages in 2,000 channels
// (one gap in every tenth channel), with older history in the same partition. EXPLAIN=64MB
// prints the plan under that work_mem first.
func BenchmarkMsgGapCheck(b *testing.B) {
	s := testenv.NewSchema(b)
	s.ApplyChatSchema(b)
	ctx := context.Background()
	_, err := s.Pool.Exec(ctx, `CREATE TABLE chat_messages_2026_11 PARTITION OF chat_messages
		FOR VALUES FROM ('2026-11-01') TO ('2026-12-01')`)
	require.NoError(b, err)
	const channels, perChannel = 2000, 250
	// Messages spread over the last 50 minutes, plus 250 per channel from the day before.
	_, err = s.Pool.Exec(ctx, `INSERT INTO chat_messages (id, channel_id, seq, sender_id, created_at)
		SELECT c * 1000 + s, c, s, 1,
			CASE WHEN s <= $2 THEN $1::timestamptz - interval '20 hours' + s * interval '1 second'
			     ELSE $1::timestamptz - interval '50 minutes' + (s - $2) * interval '10 seconds' END
		FROM generate_series(1, $3::int) c, generate_series(1, 2 * $2) s
		WHERE NOT (c % 10 = 0 AND s = $2 + 100)`, gapNow, perChannel, channels)
	require.NoError(b, err)
	_, err = s.Pool.Exec(ctx, `ANALYZE chat_messages`)
	require.NoError(b, err)
	h := newMsgGap(b, s, MsgGapConfig{})
	if os.Getenv("EXPLAIN") != "" {
		from := gapNow.Add(-time.Hour)
		tx, err := s.Pool.Begin(ctx)
		require.NoError(b, err)
		defer tx.Rollback(ctx) //nolint:errcheck
		_, err = tx.Exec(ctx, "SET LOCAL work_mem = '"+os.Getenv("EXPLAIN")+"'")
		require.NoError(b, err)
		rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+h.query(), from, gapNow, from.Add(-24*time.Hour), gapNow.Add(-time.Minute), 50, 20)
		require.NoError(b, err)
		for rows.Next() {
			var line string
			require.NoError(b, rows.Scan(&line))
			fmt.Println(line)
		}
	}
	var r MsgGapResult
	for b.Loop() {
		res, _ := handlertest.Run(ctx, h, gapRun())
		r = res.(MsgGapResult)
	}
	require.EqualValues(b, channels*perChannel-channels/10, r.MessagesChecked)
	require.EqualValues(b, channels/10, r.Gaps)
	b.ReportMetric(float64(r.MessagesChecked)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
