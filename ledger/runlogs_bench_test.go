package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
)

// BenchmarkSyncRuns is one heartbeat of a busy node: 64 runs in flight, each with 20 new log
// lines, written in one statement (lines/s is what the write path sustains per connection).
// JOBSVC_BENCH_RUNS and JOBSVC_BENCH_LINES change the shape.
func BenchmarkSyncRuns(b *testing.B) {
	l, _ := newLedger(b)
	ctx := context.Background()
	runs, lines := testenv.EnvInt(b, "JOBSVC_BENCH_RUNS", 64), testenv.EnvInt(b, "JOBSVC_BENCH_LINES", 20)
	ids := make([]int64, runs)
	for i := range ids {
		c, err := l.ClaimRun(ctx, env(fmt.Sprintf("bench-%d", i)), "a", "m", time.Minute)
		require.NoError(b, err)
		ids[i] = c.RunID
	}
	seq := 0
	for b.Loop() {
		batches := make([]ledger.LogBatch, runs)
		for i, id := range ids {
			bl := ledger.LogBatch{RunID: id, Attempt: 1, FirstSeq: 1}
			for j := 0; j < lines; j++ {
				bl.Lines = append(bl.Lines, ledger.LogLine{Seq: seq + j + 1, At: time.Now(), Level: "INFO",
					Msg: "created partition", Attrs: "table=chat_messages partition=chat_messages_2026_12"})
			}
			batches[i] = bl
		}
		seq += lines
		_, err := l.SyncRuns(ctx, ids, batches)
		require.NoError(b, err)
	}
	b.ReportMetric(float64(runs*lines*b.N)/b.Elapsed().Seconds(), "lines/s")
}
