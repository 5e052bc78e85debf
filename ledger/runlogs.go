package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// LogLine is one line a handler logged during a run.
type LogLine struct {
	ID      int64     `json:"id"` // cursor: lines come in id order within a run
	RunID   int64     `json:"run_id"`
	Attempt int       `json:"attempt"`
	Seq     int       `json:"seq"` // 1.. within the attempt
	At      time.Time `json:"at"`
	Level   string    `json:"level"`
	Msg     string    `json:"msg"`
	Attrs   string    `json:"attrs,omitempty"`
}

// LogBatch is what one run's buffer holds that the ledger has not seen yet.
type LogBatch struct {
	RunID   int64
	Attempt int
	// FirstSeq is the oldest line the buffer still keeps: older lines of the attempt, flushed
	// earlier, were pushed out by the bound and are deleted.
	FirstSeq int
	Lines    []LogLine
}

// SyncRuns is called once per heartbeat by a node: it writes the log lines its runs logged
// since the last call (every run's in one statement, however many lines) and returns the
// cancel requests (run id → who asked) among running. Nothing is written per log line.
func (l *Ledger) SyncRuns(ctx context.Context, running []int64, logs []LogBatch) (map[int64]string, error) {
	a := logArgsOf(logs)
	if len(running) == 0 && a.empty() {
		return nil, nil
	}
	rows, err := l.db.Query(ctx, logCTEs(1)+`
		SELECT id, cancel_requested_by FROM job_runs
		WHERE id = ANY($11::bigint[]) AND status = 'running' AND cancel_requested_by IS NOT NULL`,
		append(a.args(), running)...)
	if err != nil {
		return nil, fmt.Errorf("sync %d runs (%d log lines): %w", len(running), len(a.runIDs), err)
	}
	out := map[int64]string{}
	var id int64
	var by string
	if _, err := pgx.ForEachRow(rows, []any{&id, &by}, func() error { out[id] = by; return nil }); err != nil {
		return nil, fmt.Errorf("sync %d runs: %w", len(running), err)
	}
	return out, nil
}

// logArgs are log batches as the arrays logCTEs takes.
type logArgs struct {
	runIDs, trimRuns                       []int64
	attempts, seqs, trimAttempts, trimSeqs []int32
	ats                                    []time.Time
	levels, msgs, attrs                    []string
}

func logArgsOf(logs []LogBatch) logArgs {
	var a logArgs
	for _, b := range logs {
		if b.FirstSeq > 1 {
			a.trimRuns, a.trimAttempts, a.trimSeqs = append(a.trimRuns, b.RunID), append(a.trimAttempts, int32(b.Attempt)), append(a.trimSeqs, int32(b.FirstSeq))
		}
		for _, ln := range b.Lines {
			a.runIDs, a.attempts, a.seqs = append(a.runIDs, b.RunID), append(a.attempts, int32(b.Attempt)), append(a.seqs, int32(ln.Seq))
			a.ats, a.levels = append(a.ats, ln.At), append(a.levels, ln.Level)
			a.msgs, a.attrs = append(a.msgs, pgText(ln.Msg)), append(a.attrs, pgText(ln.Attrs))
		}
	}
	return a
}

func (a logArgs) empty() bool { return len(a.runIDs) == 0 && len(a.trimRuns) == 0 }

// args are the ten arguments of logCTEs, in order.
func (a logArgs) args() []any {
	return []any{a.runIDs, a.attempts, a.seqs, a.ats, a.levels, a.msgs, a.attrs, a.trimRuns, a.trimAttempts, a.trimSeqs}
}

// logCTEs inserts log lines and deletes the lines a buffer's bound pushed out, from the ten
// arguments starting at $first (logArgs.args), ahead of the statement it prefixes. The
// data-modifying CTEs see one snapshot: the DELETE never touches lines inserted here, and a
// buffer only sends lines at or after FirstSeq.
func logCTEs(first int) string {
	return fmt.Sprintf(`
		WITH ins AS (
			INSERT INTO job_run_logs (run_id, attempt, seq, at, level, msg, attrs)
			SELECT * FROM unnest($%d::bigint[], $%d::int[], $%d::int[], $%d::timestamptz[], $%d::text[], $%d::text[], $%d::text[])),
		trim AS (
			DELETE FROM job_run_logs l USING unnest($%d::bigint[], $%d::int[], $%d::int[]) AS k(run_id, attempt, first_seq)
			WHERE l.run_id = k.run_id AND l.attempt = k.attempt AND l.seq < k.first_seq)`,
		first, first+1, first+2, first+3, first+4, first+5, first+6, first+7, first+8, first+9)
}

// Dropped says how many of an attempt's first lines were pushed out by the per-run bound.
type Dropped struct {
	Attempt int `json:"attempt"`
	Lines   int `json:"lines"`
}

// RunLogPage is a page of one run's log lines.
type RunLogPage struct {
	RunID   int64     `json:"run_id"`
	Lines   []LogLine `json:"lines"`
	Dropped []Dropped `json:"dropped,omitempty"`
	// Next is the after= of the next call (the last line's id, or the after given).
	Next int64 `json:"next"`
	// RunStatus is the run's status as read before its lines: once it is terminal, this page
	// ends the log. A follower must stop by it, not by a status it read itself before the
	// call: a run that finished in between gets its built last lines in this page, and with
	// Next unmoved they would come again in the next.
	RunStatus Status `json:"-"`
}

// RunLogs returns up to limit lines of run id with an id above after, oldest first, and the
// truncation of each attempt. An attempt that stored no line (its handler did not log) gets
// its first and last lines built from the run's record (builtLines), with id 0 and not
// counted in limit: in the page that holds the first stored line of a later attempt, just
// before it, or, once the run is finished, at the end of the page that reaches the last
// stored line (every such page: they have no cursor of their own). So each comes once to a
// reader that follows Next until the run is done, and never while its place is unknown.
func (l *Ledger) RunLogs(ctx context.Context, id, after int64, limit int) (RunLogPage, error) {
	if limit <= 0 || limit > 5000 {
		limit = 5000
	}
	p := RunLogPage{RunID: id, Lines: []LogLine{}, Next: after}
	// The run's status before its lines: an attempt's last lines are written with its
	// outcome, so the lines read after the run was seen finished are all of them. A run seen
	// finished only later (by builtLines) may have lines this read missed: none are built
	// after the last stored line then, or its attempt would read twice.
	var status Status
	err := l.db.QueryRow(ctx, `SELECT status FROM job_runs WHERE id = $1`, id).Scan(&status)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return p, fmt.Errorf("logs of run %d: status: %w", id, err)
	}
	rows, err := l.db.Query(ctx, `SELECT id, run_id, attempt, seq, at, level, msg, attrs FROM job_run_logs
		WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3`, id, after, limit)
	if err != nil {
		return p, fmt.Errorf("logs of run %d: %w", id, err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowToStructByPos[LogLine])
	if err != nil {
		return p, fmt.Errorf("logs of run %d: %w", id, err)
	}
	if len(lines) > 0 {
		p.Lines, p.Next = lines, lines[len(lines)-1].ID
	}
	rows, err = l.db.Query(ctx, `SELECT attempt, min(seq), min(id) FROM job_run_logs WHERE run_id = $1
		GROUP BY attempt ORDER BY attempt`, id)
	if err != nil {
		return p, fmt.Errorf("logs of run %d: attempts: %w", id, err)
	}
	var stored []storedAttempt
	var a storedAttempt
	if _, err := pgx.ForEachRow(rows, []any{&a.attempt, &a.firstSeq, &a.firstID}, func() error {
		stored = append(stored, a)
		if a.firstSeq > 1 {
			p.Dropped = append(p.Dropped, Dropped{Attempt: a.attempt, Lines: a.firstSeq - 1})
		}
		return nil
	}); err != nil {
		return p, fmt.Errorf("logs of run %d: attempts: %w", id, err)
	}
	p.RunStatus = status
	pl := placement{lines: lines, after: after, stored: stored, tail: len(lines) < limit}
	if pl.mayHoldBuilt() {
		built, finished, err := l.builtLines(ctx, id)
		if err != nil {
			return p, fmt.Errorf("logs of run %d: %w", id, err)
		}
		p.Lines = pl.place(built, finished && status.Terminal())
	}
	return p, nil
}

// TrimRunLogs applies the per-run bound across attempts: each attempt's buffer bounds its own
// lines, so a retried run could keep max_attempts times as much; this keeps the newest
// maxLines / maxBytes of the whole run. Called when a later attempt ends, which is rare.
func (l *Ledger) TrimRunLogs(ctx context.Context, runID int64, maxLines, maxBytes int) error {
	_, err := l.db.Exec(ctx, `
		DELETE FROM job_run_logs WHERE id IN (
			SELECT id FROM (
				SELECT id, row_number() OVER w AS n, sum(octet_length(msg) + octet_length(attrs) + 32) OVER w AS b
				FROM job_run_logs WHERE run_id = $1 WINDOW w AS (ORDER BY id DESC)) x
			WHERE n > $2 OR b > $3)`, runID, maxLines, maxBytes)
	if err != nil {
		return fmt.Errorf("trim logs of run %d: %w", runID, err)
	}
	return nil
}
