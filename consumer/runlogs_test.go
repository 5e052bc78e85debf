package consumer

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/runlog"
)

// logLedger is batchLedger that keeps each outcome's log lines, by run key.
type logLedger struct {
	*batchLedger
	lmu  sync.Mutex
	logs map[string]*ledger.LogBatch
}

func (l *logLedger) Finish(ctx context.Context, c ledger.Claim, o ledger.Outcome, prio ledger.Priority) error {
	l.mu.Lock()
	key := l.keys[c.RunID]
	l.mu.Unlock()
	l.lmu.Lock()
	l.logs[key] = o.Log
	l.lmu.Unlock()
	return l.batchLedger.Finish(ctx, c, o, prio)
}

// A run whose handler logs nothing makes no log buffer, and its run log still gets its
// "run started" and "run finished" lines with the outcome; a handler's lines come between
// the two, numbered in order.
func TestRunLogBufferOnlyWhenTheHandlerLogs(t *testing.T) {
	t.Parallel()
	l := &logLedger{batchLedger: newBatchLedger(), logs: map[string]*ledger.LogBatch{}}
	logger := slog.New(runlog.Wrap(slog.NewTextHandler(io.Discard, nil)))
	var quiet *run
	var p *Processor
	reg := keyRegistry{handlers: map[string]func(context.Context) (any, error){
		"talks": func(ctx context.Context) (any, error) {
			logger.InfoContext(ctx, "hello", "n", 1)
			return nil, nil
		},
		"quiet": func(ctx context.Context) (any, error) {
			require.True(t, logger.Enabled(ctx, slog.LevelInfo), "a run's records are captured; asking makes no buffer")
			p.mu.Lock()
			defer p.mu.Unlock()
			for _, r := range p.running {
				if r.env.RunKey == "quiet" {
					quiet = r
				}
			}
			return "ok", nil
		},
	}}
	p = batchProcessor(l, reg, 2)
	require.Equal(t, []Action{Ack, Ack}, actions(p.ProcessBatch(context.Background(), deliveries(keyBody(t, "talks"), keyBody(t, "quiet")))))
	require.NotNil(t, quiet)
	require.Nil(t, quiet.logs.Load(), "no buffer for a run that logged nothing")

	msgs := func(b *ledger.LogBatch) (out []string) {
		for i, ln := range b.Lines {
			require.Equal(t, i+1, ln.Seq)
			out = append(out, ln.Msg)
		}
		return out
	}
	l.lmu.Lock()
	defer l.lmu.Unlock()
	require.Equal(t, []string{"run started", "hello", "run finished"}, msgs(l.logs["talks"]))
	require.Equal(t, []string{"run started", "run finished"}, msgs(l.logs["quiet"]))
	q := l.logs["quiet"]
	require.Equal(t, 1, q.FirstSeq)
	require.Contains(t, q.Lines[0].Attrs, "node=n")
	require.Contains(t, q.Lines[0].Attrs, "trigger=manual")
	require.Contains(t, q.Lines[1].Attrs, "status=succeeded")
	require.Contains(t, q.Lines[1].Attrs, `result="\"ok\""`)
	require.Equal(t, "INFO", q.Lines[1].Level)
	require.False(t, q.Lines[1].At.Before(q.Lines[0].At))
}
