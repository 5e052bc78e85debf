package runlog_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/runlog"
)

func TestBufferKeepsTheLastLinesWithinBothBounds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name           string
		lines, bytes   int
		add            int
		wantFirst, len int
	}{
		{"under both", 10, 1 << 20, 5, 1, 5},
		{"line bound", 10, 1 << 20, 25, 16, 10},
		{"byte bound", 1000, 10 * 40, 30, 21, 10}, // each line: 8-byte msg + 32 overhead = 40 bytes
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := runlog.NewBuffer().WithBounds(c.lines, c.bytes)
			for i := 1; i <= c.add; i++ {
				b.Add(time.Now(), slog.LevelInfo, "line "+pad(i), "")
			}
			lines, first := b.Pending()
			require.Equal(t, c.wantFirst, first)
			require.Len(t, lines, c.len)
			require.Equal(t, c.add, lines[len(lines)-1].Seq)
			require.Equal(t, c.wantFirst-1, b.Dropped())
		})
	}
}

func pad(i int) string {
	s := "000" + string(rune('0'+i/10)) + string(rune('0'+i%10))
	return s[len(s)-3:]
}

func TestPendingHandsOutEachLineOnceAndUnflushGivesThemBack(t *testing.T) {
	t.Parallel()
	b := runlog.NewBuffer()
	b.Add(time.Now(), slog.LevelInfo, "a", "")
	b.Add(time.Now(), slog.LevelWarn, "b", "")
	first, _ := b.Pending()
	require.Len(t, first, 2)
	none, _ := b.Pending()
	require.Empty(t, none)
	b.Add(time.Now(), slog.LevelError, "c", "")
	third, _ := b.Pending()
	require.Len(t, third, 1)
	require.Equal(t, "ERROR", third[0].Level)
	b.Unflush(third) // the flush failed
	again, _ := b.Pending()
	require.Equal(t, third, again)
}

func TestOneHugeLineIsCutToTheByteBound(t *testing.T) {
	t.Parallel()
	b := runlog.NewBuffer().WithBounds(10, 1000)
	b.Add(time.Now(), slog.LevelInfo, "small", "")
	b.Add(time.Now(), slog.LevelInfo, strings.Repeat("x", 5000), "k=v")
	lines, _ := b.Pending()
	require.Len(t, lines, 1, "the huge line pushed the small one out")
	require.LessOrEqual(t, len(lines[0].Msg), 1000)
	require.True(t, strings.HasSuffix(lines[0].Msg, "(truncated)"))
}

// A handler's records logged with the run's context land in the buffer (Info even when the
// node logs only warnings) and in the node's log tagged with the run; others pass through.
func TestHandlerCapturesRunRecordsAndTagsTheNodeLine(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	log := slog.New(runlog.Wrap(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})))
	b := runlog.NewBuffer(slog.Int64("run_id", 42), slog.String("job", "pg_partition"),
		slog.String("run_key", "manual:x"), slog.Int("shard", 0), slog.Int("attempt", 2))
	ctx := runlog.WithBuffer(context.Background(), b)

	hlog := log.With("component", "partition").WithGroup("g")
	hlog.InfoContext(ctx, "created partition", "table", "chat_messages", "note", "two words")
	hlog.WarnContext(ctx, "lock timeout")
	log.DebugContext(ctx, "debug is not kept")
	log.WarnContext(context.Background(), "not a run line")

	lines, first := b.Pending()
	require.Equal(t, 1, first)
	require.Len(t, lines, 2)
	require.Equal(t, "INFO", lines[0].Level)
	require.Equal(t, "created partition", lines[0].Msg)
	require.Equal(t, `component=partition g.table=chat_messages g.note="two words"`, lines[0].Attrs)
	require.Equal(t, "WARN", lines[1].Level)

	node := out.String()
	require.NotContains(t, node, "created partition", "below the node's level: kept with the run only")
	require.Contains(t, node, "lock timeout")
	require.Contains(t, node, "run_id=42")
	require.Contains(t, node, "run_key=manual:x")
	require.Contains(t, node, "attempt=2")
	require.Contains(t, node, "not a run line")
}
