package runlog_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/chatplat/job-service/runlog"
)

// BenchmarkCapture is the cost a handler pays per log line kept with its run (captured and
// written to the node's JSON log): the write path has no statement per line, only this.
func BenchmarkCapture(b *testing.B) {
	log := slog.New(runlog.Wrap(slog.NewJSONHandler(io.Discard, nil)))
	buf := runlog.NewBuffer(slog.Int64("run_id", 1), slog.String("job", "pg_partition"))
	ctx := runlog.WithBuffer(context.Background(), buf)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		log.InfoContext(ctx, "created partition", "table", "chat_messages", "n", i)
		if i%1000 == 0 {
			buf.Pending() // as the heartbeat does
		}
	}
}
