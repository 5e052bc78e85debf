package consumer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
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

// A run whose handler logs nothing makes no log buffer and stores no line (the ledger builds
// its first and last lines from its record when read: ledger's
// TestRunLogsOfARunThatLoggedNothingAreBuiltFromItsRecord);
// a handler's lines are stored between the run's "run started" and "run finished", numbered
// in order, with the outcome.
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

	l.lmu.Lock()
	defer l.lmu.Unlock()
	require.Nil(t, l.logs["quiet"], "no line stored for a run that logged nothing")
	talks := l.logs["talks"]
	require.NotNil(t, talks)
	require.Equal(t, 1, talks.FirstSeq)
	var msgs []string
	for i, ln := range talks.Lines {
		require.Equal(t, i+1, ln.Seq)
		msgs = append(msgs, ln.Msg)
	}
	require.Equal(t, []string{"run started", "hello", "run finished"}, msgs)
	require.Contains(t, talks.Lines[0].Attrs, "node=n")
	require.Contains(t, talks.Lines[0].Attrs, "trigger=manual")
	require.Contains(t, talks.Lines[1].Attrs, "n=1")
	require.Contains(t, talks.Lines[2].Attrs, "status=succeeded")
	require.Equal(t, "INFO", talks.Lines[2].Level)
}

// The node's own "run finished" line: at info for a run whose handler logged, at warn for one
// that did not succeed, and only at debug for a run that succeeded without a word.
func TestNodeLogsRunFinishedForRunsThatSaidOrFailed(t *testing.T) {
	t.Parallel()
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var out syncBuffer
		logger := slog.New(runlog.Wrap(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: level})))
		reg := keyRegistry{handlers: map[string]func(context.Context) (any, error){
			"talks": func(ctx context.Context) (any, error) { logger.InfoContext(ctx, "hello"); return nil, nil },
			"quiet": func(context.Context) (any, error) { return nil, nil },
			"fails": func(context.Context) (any, error) { return nil, errors.New("boom") },
		}}
		p := batchProcessor(newBatchLedger(), reg, 2)
		p.log = logger
		p.ProcessBatch(context.Background(), deliveries(keyBody(t, "talks"), keyBody(t, "quiet"), keyBody(t, "fails")))
		finished := map[string]string{}
		for _, line := range strings.Split(out.String(), "\n") {
			if !strings.Contains(line, `msg="run finished"`) {
				continue
			}
			for _, key := range []string{"talks", "quiet", "fails"} {
				if strings.Contains(line, "run_key="+key+" ") {
					finished[key] = strings.Fields(line)[1]
				}
			}
		}
		want := map[string]string{"talks": "level=INFO", "fails": "level=WARN"}
		if level == slog.LevelDebug {
			want["quiet"] = "level=DEBUG"
		}
		require.Equal(t, want, finished, "node log at %s:\n%s", level, out.String())
	}
}

// syncBuffer is a bytes.Buffer that runs may write to at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
