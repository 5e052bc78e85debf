package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatplat/job-service/runlog"
)

// builtLines are the first and last line of each attempt of run id that has ended, by
// attempt: a node stores an attempt's log only when its handler logged (two rows per run for
// every no-op cost a third of the ledger's time per run), so for the others the lines are
// built here from the run row and its past attempts, as runlog renders the node's own. An
// attempt's first line is at its claim (started_at), which a handler waiting for a slot
// starts a little after. The current attempt is there only once the run is finished
// (reported by finished): until then its lines may still come.
func (l *Ledger) builtLines(ctx context.Context, id int64) (built map[int][]LogLine, finished bool, err error) {
	run, err := l.GetRun(ctx, id)
	if err != nil || run.Attempt == 0 || run.StartedAt == nil {
		if errors.Is(err, ErrNotFound) {
			err = nil
		}
		return nil, false, err
	}
	rows, err := l.db.Query(ctx, `SELECT attempt, node, started_at, coalesce(finished_at, started_at), outcome, error
		FROM job_past_attempts WHERE run_id = $1 AND attempt < $2 ORDER BY attempt`, id, run.Attempt)
	if err != nil {
		return nil, false, fmt.Errorf("past attempts of run %d: %w", id, err)
	}
	type attempt struct {
		n                 int
		node              string
		started, finished time.Time
		status, err       string
		result            []byte
	}
	var atts []attempt
	var a attempt
	if _, err := pgx.ForEachRow(rows, []any{&a.n, &a.node, &a.started, &a.finished, &a.status, &a.err}, func() error {
		atts = append(atts, a)
		return nil
	}); err != nil {
		return nil, false, fmt.Errorf("past attempts of run %d: %w", id, err)
	}
	finished = run.Status.Terminal()
	last := attempt{n: run.Attempt, node: run.Node, started: *run.StartedAt, finished: run.UpdatedAt,
		status: string(run.Status), err: run.Error, result: run.Result}
	if run.FinishedAt != nil {
		last.finished = *run.FinishedAt
	}
	if finished {
		atts = append(atts, last)
	}
	built = make(map[int][]LogLine, len(atts))
	for _, a := range atts {
		start := runlog.Start{Node: a.node, Attempt: a.n, Shard: run.ShardIndex, Shards: run.ShardTotal,
			Trigger: run.Trigger, Params: run.Params, ScheduleDelay: a.started.Sub(run.ScheduledAt)}
		end := runlog.End{Status: a.status, Elapsed: a.finished.Sub(a.started), Result: a.result, Err: a.err}
		for _, ln := range []runlog.Line{
			runlog.Render(1, a.started, slog.LevelInfo, runlog.StartMsg, start.Attrs()...),
			runlog.Render(2, a.finished, end.Level(), runlog.EndMsg, end.Attrs()...),
		} {
			built[a.n] = append(built[a.n], LogLine{RunID: id, Attempt: a.n, Seq: ln.Seq, At: ln.At, Level: ln.Level, Msg: ln.Msg, Attrs: ln.Attrs})
		}
	}
	return built, finished, nil
}

// storedAttempt is an attempt with stored lines: its oldest kept line's seq and id.
type storedAttempt struct {
	attempt, firstSeq int
	firstID           int64
}

// placement puts built lines among one page of stored lines (see RunLogs).
type placement struct {
	lines  []LogLine // the page's stored lines
	after  int64
	stored []storedAttempt // every attempt with stored lines, by attempt
	tail   bool            // the page reaches the last stored line
}

func (pl placement) inPage(id int64) bool {
	return len(pl.lines) > 0 && id > pl.after && id <= pl.lines[len(pl.lines)-1].ID
}

// anchor is the first stored line of an attempt after k: built lines of k go before it.
func (pl placement) anchor(k int) (int64, bool) {
	var first int64
	for _, s := range pl.stored {
		if s.attempt > k && (first == 0 || s.firstID < first) {
			first = s.firstID
		}
	}
	return first, first != 0
}

// mayHoldBuilt reports whether the page is a place for built lines at all, so that the
// pages of a run whose attempts all logged cost no read of its record.
func (pl placement) mayHoldBuilt() bool {
	if pl.tail {
		return true
	}
	for i, s := range pl.stored {
		if s.attempt > 1 && (i == 0 || pl.stored[i-1].attempt != s.attempt-1) && pl.inPage(s.firstID) {
			return true
		}
	}
	return false
}

// place returns the page's lines with the built lines of the attempts that stored none, by
// attempt (built), in their places; those after the last stored line only once finished.
func (pl placement) place(built map[int][]LogLine, finished bool) []LogLine {
	logged := make(map[int]bool, len(pl.stored))
	for _, s := range pl.stored {
		logged[s.attempt] = true
	}
	before := map[int64][]LogLine{}
	var trailing []LogLine
	attempts := make([]int, 0, len(built))
	for k := range built {
		if !logged[k] {
			attempts = append(attempts, k)
		}
	}
	slices.Sort(attempts)
	for _, k := range attempts {
		b := built[k]
		if at, ok := pl.anchor(k); ok {
			if pl.inPage(at) {
				before[at] = append(before[at], b...)
			}
		} else if pl.tail && finished {
			trailing = append(trailing, b...)
		}
	}
	out := make([]LogLine, 0, len(pl.lines)+len(trailing))
	for _, ln := range pl.lines {
		out = append(append(out, before[ln.ID]...), ln)
	}
	return append(out, trailing...)
}
