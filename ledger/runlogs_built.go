package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatplat/job-service/runlog"
)

// builtLines are the first and last line of each attempt of a finished run that has no
// stored lines: a node stores an attempt's log only when its handler logged (two rows per
// run for every no-op cost a third of the ledger's time per run), so for the others the lines
// are built here from the run row and its past attempts, as runlog renders the node's own.
// An attempt's first line is at its claim (started_at), which a handler waiting for a slot
// starts a little after. Nil while the run is not finished: its lines may still come.
func (l *Ledger) builtLines(ctx context.Context, id int64) ([]LogLine, error) {
	run, err := l.GetRun(ctx, id)
	if err != nil || !run.Status.Terminal() || run.Attempt == 0 || run.StartedAt == nil {
		if errors.Is(err, ErrNotFound) {
			err = nil
		}
		return nil, err
	}
	rows, err := l.db.Query(ctx, `SELECT attempt, node, started_at, coalesce(finished_at, started_at), outcome, error
		FROM job_past_attempts WHERE run_id = $1 AND attempt < $2 ORDER BY attempt`, id, run.Attempt)
	if err != nil {
		return nil, fmt.Errorf("past attempts of run %d: %w", id, err)
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
		return nil, fmt.Errorf("past attempts of run %d: %w", id, err)
	}
	last := attempt{n: run.Attempt, node: run.Node, started: *run.StartedAt, finished: run.UpdatedAt,
		status: string(run.Status), err: run.Error, result: run.Result}
	if run.FinishedAt != nil {
		last.finished = *run.FinishedAt
	}
	atts = append(atts, last)
	out := make([]LogLine, 0, 2*len(atts))
	for _, a := range atts {
		start := runlog.Start{Node: a.node, Attempt: a.n, Shard: run.ShardIndex, Shards: run.ShardTotal,
			Trigger: run.Trigger, Params: run.Params, ScheduleDelay: a.started.Sub(run.ScheduledAt)}
		end := runlog.End{Status: a.status, Elapsed: a.finished.Sub(a.started), Result: a.result, Err: a.err}
		for _, ln := range []runlog.Line{
			runlog.Render(1, a.started, slog.LevelInfo, runlog.StartMsg, start.Attrs()...),
			runlog.Render(2, a.finished, end.Level(), runlog.EndMsg, end.Attrs()...),
		} {
			out = append(out, LogLine{RunID: id, Attempt: a.n, Seq: ln.Seq, At: ln.At, Level: ln.Level, Msg: ln.Msg, Attrs: ln.Attrs})
		}
	}
	return out, nil
}
