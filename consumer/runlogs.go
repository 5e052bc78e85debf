package consumer

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/runlog"
)

// Buffer is the run's log buffer, made when the handler logs its first line (runlog.Source):
// it then starts with the run's "run started" line. A run whose handler never logs makes
// none; its start and end lines are built when its outcome is recorded.
func (r *run) Buffer() *runlog.Buffer {
	if b := r.logs.Load(); b != nil {
		return b
	}
	r.logOnce.Do(func() {
		b := newRunBuffer(r.env, r.claim)
		b.Record(r.started, slog.LevelInfo, "run started", startAttrs(r.node, r.env, r.claim, r.started)...)
		r.logs.Store(b)
	})
	return r.logs.Load()
}

// newRunBuffer is the log buffer of one attempt; its lines in the node's log carry the run.
func newRunBuffer(env job.Envelope, c ledger.Claim) *runlog.Buffer {
	return runlog.NewBuffer(slog.Int64("run_id", c.RunID), slog.String("job", env.Job),
		slog.String("run_key", env.RunKey), slog.Int("shard", env.Shard.Index), slog.Int("attempt", c.Attempt))
}

func batchOf(c ledger.Claim, b *runlog.Buffer) (ledger.LogBatch, []runlog.Line) {
	lines, first := b.Pending()
	out := ledger.LogBatch{RunID: c.RunID, Attempt: c.Attempt, FirstSeq: first, Lines: make([]ledger.LogLine, len(lines))}
	for i, ln := range lines {
		out.Lines[i] = ledger.LogLine{Seq: ln.Seq, At: ln.At, Level: ln.Level, Msg: ln.Msg, Attrs: ln.Attrs}
	}
	return out, lines
}

// recordOutcome writes the attempt's last line into its log (status, duration, a one-line
// result, the error) and hands the lines not written yet to the outcome, so they go in the
// outcome's own statement: every run gets its start and end lines without a round trip of
// their own. The result is encoded once, here, for both the line and the ledger.
func (p *Processor) recordOutcome(r *run, at attempt, o *ledger.Outcome) {
	level := slog.LevelInfo
	if o.Status != ledger.StatusSucceeded {
		level = slog.LevelWarn
	}
	attrs := make([]slog.Attr, 0, 4)
	attrs = append(attrs, slog.String("status", string(o.Status)), slog.Int64("duration_ms", at.elapsed.Milliseconds()))
	if o.Result != nil {
		if b, err := json.Marshal(o.Result); err == nil {
			o.Result = json.RawMessage(b)
			attrs = append(attrs, slog.String("result", summary(b)))
		}
	}
	if o.Err != nil {
		attrs = append(attrs, slog.String("err", summary([]byte(o.Err.Error()))))
	}
	if _, ok := p.ledger.(RunSyncer); !ok {
		return
	}
	if b := r.logs.Load(); b != nil {
		b.Record(p.now(), level, "run finished", attrs...)
		batch, _ := batchOf(r.claim, b)
		o.Log = &batch
		return
	}
	// The handler logged nothing: the two lines, without a buffer.
	batch := ledger.LogBatch{RunID: r.claim.RunID, Attempt: r.claim.Attempt, FirstSeq: 1, Lines: make([]ledger.LogLine, 0, 2)}
	if at.started {
		batch.Lines = append(batch.Lines, ledger.LogLine{Seq: 1, At: at.start, Level: slog.LevelInfo.String(), Msg: "run started",
			Attrs: runlog.Render(startAttrs(r.node, r.env, r.claim, at.start)...)})
	}
	batch.Lines = append(batch.Lines, ledger.LogLine{Seq: len(batch.Lines) + 1, At: p.now(), Level: level.String(),
		Msg: "run finished", Attrs: runlog.Render(attrs...)})
	o.Log = &batch
}

// trimLogs applies the run's log bound across attempts once a later attempt has written its
// lines (rare: only retried runs pay for it).
func (p *Processor) trimLogs(ctx context.Context, r *run) {
	syncer, ok := p.ledger.(RunSyncer)
	if !ok || r.claim.Attempt <= 1 {
		return
	}
	if err := syncer.TrimRunLogs(ctx, r.claim.RunID, runlog.MaxLines, runlog.MaxBytes); err != nil {
		p.runLog(r).WarnContext(ctx, "run log not trimmed", "err", err)
	}
}

// startAttrs are the run log's first line: who runs which attempt of what, with which params.
func startAttrs(node string, env job.Envelope, c ledger.Claim, start time.Time) []slog.Attr {
	params := string(env.Params)
	if params == "" {
		params = "{}"
	}
	return []slog.Attr{slog.String("node", node), slog.Int("attempt", c.Attempt),
		slog.String("shard", strconv.Itoa(env.Shard.Index)+"/"+strconv.Itoa(env.Shard.Total)),
		slog.String("trigger", string(env.Trigger)), slog.String("params", summary(env.Params)),
		slog.Duration("schedule_delay", start.Sub(env.ScheduledAt))}
}

// maxSummary bounds the result, params and error of the start and end lines: one line.
const maxSummary = 300

// summary is b on one line, cut at maxSummary bytes (on a rune boundary).
func summary(b []byte) string {
	s := string(b)
	if len(s) > maxSummary {
		n := maxSummary
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	if strings.ContainsAny(s, "\n\r") {
		s = strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
	}
	return s
}
