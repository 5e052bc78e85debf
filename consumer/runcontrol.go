package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/runlog"
)

// RunSyncer is the ledger's side of run logs and cancel requests. The processor uses it when
// its Ledger has it (ledger.Ledger and GroupCommit do; unit-test fakes may not).
type RunSyncer interface {
	SyncRuns(ctx context.Context, running []int64, logs []ledger.LogBatch) (map[int64]string, error)
	TrimRunLogs(ctx context.Context, runID int64, maxLines, maxBytes int) error
}

// Retrier re-runs a failed run as a new linked run (ledger.Ledger.Retry).
type Retrier interface {
	Retry(ctx context.Context, id int64, by, runKey string, publish ledger.PublishFunc) (ledger.Run, bool, error)
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

// syncRuns writes the runs' new log lines and stops the runs an operator cancelled (waiting
// ones too), in one statement per heartbeat for all runs of the node.
func (p *Processor) syncRuns(ctx context.Context) error {
	syncer, ok := p.ledger.(RunSyncer)
	if !ok {
		return nil
	}
	p.mu.Lock()
	ids := make([]int64, 0, len(p.running))
	var batches []ledger.LogBatch
	taken := map[*runlog.Buffer][]runlog.Line{}
	for id, r := range p.running {
		ids = append(ids, id)
		if r.logs == nil {
			continue
		}
		b, lines := batchOf(r.claim, r.logs)
		if len(lines) > 0 || b.FirstSeq > 1 {
			batches, taken[r.logs] = append(batches, b), lines
		}
	}
	p.mu.Unlock()
	cancels, err := syncer.SyncRuns(ctx, ids, batches)
	if err != nil {
		for buf, lines := range taken {
			buf.Unflush(lines)
		}
		return fmt.Errorf("sync runs: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, by := range cancels {
		if r, ok := p.running[id]; ok {
			p.log.InfoContext(ctx, "cancel requested; stopping the run", "run_id", id, "job", r.env.Job,
				"run_key", r.env.RunKey, "shard", r.env.Shard.Index, "attempt", r.claim.Attempt, "by", by)
			p.stopLocked(r, &ledger.CancelledError{By: by})
		}
	}
	return nil
}

// recordOutcome writes the attempt's last line into its log (status, duration, a one-line
// result, the error) and hands the lines not written yet to the outcome, so they go in the
// outcome's own statement: every run gets its start and end lines without a round trip of
// their own. The result is encoded once, here, for both the line and the ledger. A run that
// never started gets its buffer here, for its one line.
func (p *Processor) recordOutcome(r *run, logs *runlog.Buffer, o *ledger.Outcome, elapsed time.Duration) {
	if logs == nil {
		logs = newRunBuffer(r.env, r.claim)
	}
	level := slog.LevelInfo
	if o.Status != ledger.StatusSucceeded {
		level = slog.LevelWarn
	}
	attrs := make([]slog.Attr, 0, 4)
	attrs = append(attrs, slog.String("status", string(o.Status)), slog.Int64("duration_ms", elapsed.Milliseconds()))
	if o.Result != nil {
		if b, err := json.Marshal(o.Result); err == nil {
			o.Result = json.RawMessage(b)
			attrs = append(attrs, slog.String("result", summary(b)))
		}
	}
	if o.Err != nil {
		attrs = append(attrs, slog.String("err", summary([]byte(o.Err.Error()))))
	}
	logs.Record(p.now(), level, "run finished", attrs...)
	if _, ok := p.ledger.(RunSyncer); ok {
		b, _ := batchOf(r.claim, logs)
		o.Log = &b
	}
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

// dlqPrefix starts the topic of a message an operator resends from the dead-letter queue (the
// RocketMQ dashboard's "resend" hands it to a consumer of the group directly).
const dlqPrefix = "%DLQ%"

// retryDeadLetter answers a resent dead letter of a failed or cancelled run: the operator
// wants it run again, so it is retried as a new run linked to it (as jobctl retry does), once
// per dead letter however often it is resent.
func (p *Processor) retryDeadLetter(ctx context.Context, log *slog.Logger, d Delivery, c ledger.Claim) Decision {
	r, ok := p.ledger.(Retrier)
	if !ok {
		return Decision{Action: Ack, Reason: "already " + string(c.Status)}
	}
	publish := func(ctx context.Context, env job.Envelope) (string, error) {
		return p.pub.Publish(ctx, env, time.Time{})
	}
	run, created, err := r.Retry(ctx, c.RunID, "dlq-resend", ledger.DLQRetryKey(c.RunID, d.MsgID), publish)
	if err != nil && !errors.Is(err, ledger.ErrNotRetryable) {
		log.WarnContext(ctx, "retry of a resent dead letter failed, will try again", "run_id", c.RunID, "err", err)
		return Decision{Action: RetryLater, After: p.retryPolicy().after(d.ReconsumeTimes + 1), Reason: err.Error()}
	}
	if err != nil {
		return Decision{Action: Ack, Reason: "already " + string(c.Status)}
	}
	log.InfoContext(ctx, "dead letter resent: run retried as a new run", "run_id", c.RunID,
		"retry_run_id", run.ID, "retry_run_key", run.RunKey, "created", created)
	return Decision{Action: Ack, Reason: fmt.Sprintf("retried as run %d", run.ID)}
}

func fromDLQ(d Delivery) bool { return strings.HasPrefix(d.Topic, dlqPrefix) }
