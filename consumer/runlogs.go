package consumer

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/runlog"
)

// Buffer is the run's log buffer, made when the handler logs its first line (runlog.Source):
// it then starts with the run's "run started" line. A run whose handler never logs makes
// none and stores no line: the ledger builds its first and last lines from its record when
// its log is read (ledger.RunLogs), rendered by the same runlog.Start and runlog.End.
func (r *run) Buffer() *runlog.Buffer {
	if b := r.logs.Load(); b != nil {
		return b
	}
	r.logOnce.Do(func() {
		b := newRunBuffer(r.env, r.claim)
		b.Record(r.started, slog.LevelInfo, runlog.StartMsg, startAttrs(r.node, r.env, r.claim, r.started)...)
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

// recordOutcome encodes the result once, for the ledger and the log. When the handler logged,
// it writes the attempt's last line into its log (status, duration, a one-line result, the
// error) and hands the lines not written yet to the outcome, so they go in the outcome's own
// statement: no round trip of their own.
func (p *Processor) recordOutcome(r *run, at attempt, o *ledger.Outcome) {
	end := runlog.End{Status: string(o.Status), Elapsed: at.elapsed}
	if o.Result != nil {
		if b, err := json.Marshal(o.Result); err == nil {
			o.Result, end.Result = json.RawMessage(b), b
		}
	}
	b := r.logs.Load()
	if _, ok := p.ledger.(RunSyncer); !ok || b == nil {
		return
	}
	if o.Err != nil {
		end.Err = o.Err.Error()
	}
	b.Record(p.now(), end.Level(), runlog.EndMsg, end.Attrs()...)
	batch, _ := batchOf(r.claim, b)
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
	return runlog.Start{Node: node, Attempt: c.Attempt, Shard: env.Shard.Index, Shards: env.Shard.Total,
		Trigger: string(env.Trigger), Params: env.Params, ScheduleDelay: start.Sub(env.ScheduledAt)}.Attrs()
}
