package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatplat/job-service/job"
)

// ErrBackfillCancelled says a backfill was cancelled: nothing more is published for it.
var ErrBackfillCancelled = errors.New("backfill cancelled")

// Backfill is one row of job_backfills: a job's runs for each period between two dates.
type Backfill struct {
	ID          int64           `json:"id"`
	Job         string          `json:"job"`
	From        time.Time       `json:"from"` // first day (a date)
	To          time.Time       `json:"to"`   // last day, inclusive
	Params      json.RawMessage `json:"params"`
	MaxActive   int             `json:"max_active"`
	RequestedBy string          `json:"requested_by"`
	CreatedAt   time.Time       `json:"created_at"`
	CancelledAt *time.Time      `json:"cancelled_at,omitempty"`
	CancelledBy string          `json:"cancelled_by,omitempty"`
}

// BackfillRequest asks for a backfill of Job from the date From to the date To.
type BackfillRequest struct {
	Job       string
	From, To  time.Time
	Params    json.RawMessage // other params of every run; the period's own is set per run
	MaxActive int             // runs of the backfill queued or running at once; at least 1
	By        string
}

const backfillColumns = `id, job, range_from, range_to, params, max_active, requested_by, created_at, cancelled_at, cancelled_by`

func scanBackfill(row pgx.Row) (Backfill, error) {
	var b Backfill
	err := row.Scan(&b.ID, &b.Job, &b.From, &b.To, &b.Params, &b.MaxActive, &b.RequestedBy, &b.CreatedAt,
		&b.CancelledAt, &b.CancelledBy)
	return b, err
}

// OpenBackfill returns the backfill of the request's job, range and params, creating it the
// first time. Asking again for the same one (to resume it, or to re-run what failed) finds it
// again, reopened if it was cancelled, with the request's concurrency limit.
func (l *Ledger) OpenBackfill(ctx context.Context, req BackfillRequest) (Backfill, error) {
	if req.MaxActive < 1 {
		return Backfill{}, fmt.Errorf("backfill %s: max active %d is below 1", req.Job, req.MaxActive)
	}
	if _, err := job.Periods(l.sections, req.Job, req.From, req.To, req.Params); err != nil {
		return Backfill{}, err
	}
	b, err := scanBackfill(l.db.QueryRow(ctx, `
		INSERT INTO job_backfills (job, range_from, range_to, params, max_active, requested_by)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (job, range_from, range_to, params) DO UPDATE SET max_active = EXCLUDED.max_active,
			cancelled_at = NULL, cancelled_by = '', updated_at = now()
		RETURNING `+backfillColumns, req.Job, req.From.Format(time.DateOnly), req.To.Format(time.DateOnly),
		paramsOrEmpty(req.Params), req.MaxActive, pgText(req.By)))
	if err != nil {
		return Backfill{}, fmt.Errorf("open backfill of %s: %w", req.Job, err)
	}
	return b, nil
}

// GetBackfill returns backfill id.
func (l *Ledger) GetBackfill(ctx context.Context, id int64) (Backfill, error) {
	b, err := scanBackfill(l.db.QueryRow(ctx, `SELECT `+backfillColumns+` FROM job_backfills WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Backfill{}, fmt.Errorf("backfill %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Backfill{}, fmt.Errorf("get backfill %d: %w", id, err)
	}
	return b, nil
}

// Period is one period of a backfill and its latest run in it (RunID 0: none yet).
type Period struct {
	Interval job.Interval    `json:"interval"`
	Params   json.RawMessage `json:"params"`
	RunID    int64           `json:"run_id,omitempty"`
	Status   Status          `json:"status,omitempty"`
	Runs     int             `json:"runs"` // how many runs the backfill made for it so far
}

// Pending reports whether the period still needs a run: none yet, or its latest ended
// without succeeding.
func (p Period) Pending() bool {
	return p.RunID == 0 || (p.Status.Terminal() && p.Status != StatusSucceeded)
}

// Periods returns every period of backfill b, oldest first, with its latest run.
func (l *Ledger) Periods(ctx context.Context, b Backfill) ([]Period, error) {
	params, err := job.Periods(l.sections, b.Job, b.From, b.To, b.Params)
	if err != nil {
		return nil, err
	}
	out := make([]Period, len(params))
	index := make(map[int64]int, len(params)) // by the period's start, in ns
	for i, p := range params {
		env, iv, err := l.pin(job.Envelope{Job: b.Job, Params: p}, b.From)
		if err != nil {
			return nil, fmt.Errorf("backfill %d: %w", b.ID, err)
		}
		out[i] = Period{Interval: iv, Params: env.Params}
		index[iv.Start.UnixNano()] = i
	}
	rows, err := l.db.Query(ctx, `
		SELECT DISTINCT ON (logical_start) logical_start, id, status,
			count(*) OVER (PARTITION BY logical_start)
		FROM job_runs WHERE backfill_id = $1 AND shard_index = 0
		ORDER BY logical_start, id DESC`, b.ID)
	if err != nil {
		return nil, fmt.Errorf("runs of backfill %d: %w", b.ID, err)
	}
	var start time.Time
	var id int64
	var st Status
	var n int
	_, err = pgx.ForEachRow(rows, []any{&start, &id, &st, &n}, func() error {
		if i, ok := index[start.UnixNano()]; ok {
			out[i].RunID, out[i].Status, out[i].Runs = id, st, n
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("runs of backfill %d: %w", b.ID, err)
	}
	return out, nil
}

// StartPeriod records the next run of period p of backfill b, then publishes it. Its run key
// names the backfill, the period and how many runs the backfill made for it before, so two
// drivers of one backfill racing for a period record one run. It returns nothing (and no
// error) when the run key was taken by such a race, and ErrBackfillCancelled once b is.
func (l *Ledger) StartPeriod(ctx context.Context, b Backfill, p Period, now time.Time, publish PublishFunc) (*Run, error) {
	var cancelled bool
	if err := l.db.QueryRow(ctx, `SELECT cancelled_at IS NOT NULL FROM job_backfills WHERE id = $1`, b.ID).
		Scan(&cancelled); err != nil {
		return nil, fmt.Errorf("backfill %d: %w", b.ID, err)
	}
	if cancelled {
		return nil, fmt.Errorf("backfill %d: %w", b.ID, ErrBackfillCancelled)
	}
	env := job.Envelope{Job: b.Job, Trigger: job.TriggerManual, ScheduledAt: now.UTC(),
		RunKey: fmt.Sprintf("backfill:%d@%s.%d", b.ID, p.Interval.Start.UTC().Format("20060102T150405Z"), p.Runs+1),
		Shard:  job.Shard{Index: 0, Total: 1}, Params: p.Params, RequestedBy: b.RequestedBy}
	recorded, err := l.record(ctx, []newRun{{env: env, iv: p.Interval, backfill: b.ID}})
	if err != nil || len(recorded) == 0 {
		return nil, err
	}
	sent, err := l.publishRecorded(ctx, recorded, publish)
	if err != nil {
		return &recorded[0], err
	}
	return &sent[0], nil
}

// CancelBackfill stops backfill id as a whole: nothing more is published for it, and each of
// its runs not finished is cancelled (RequestCancel). It returns how many runs it cancelled.
func (l *Ledger) CancelBackfill(ctx context.Context, id int64, by string) (int, error) {
	tag, err := l.db.Exec(ctx, `UPDATE job_backfills SET cancelled_at = now(), cancelled_by = $2, updated_at = now()
		WHERE id = $1`, id, pgText(by))
	if err != nil {
		return 0, fmt.Errorf("cancel backfill %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return 0, fmt.Errorf("backfill %d: %w", id, ErrNotFound)
	}
	rows, err := l.db.Query(ctx, `SELECT id FROM job_runs WHERE backfill_id = $1
		AND status IN ('scheduled', 'running', 'retrying', 'interrupted', 'abandoned') ORDER BY id`, id)
	if err != nil {
		return 0, fmt.Errorf("cancel backfill %d: %w", id, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, fmt.Errorf("cancel backfill %d: %w", id, err)
	}
	n := 0
	for _, run := range ids {
		if _, err := l.RequestCancel(ctx, run, by); err != nil {
			if errors.Is(err, ErrNotCancellable) {
				continue // it finished meanwhile
			}
			return n, fmt.Errorf("cancel backfill %d: %w", id, err)
		}
		n++
	}
	return n, nil
}

// BackfillProgress is where a backfill stands, as DriveBackfill reports it.
type BackfillProgress struct {
	Backfill  Backfill `json:"backfill"`
	Total     int      `json:"total"`     // periods in the range
	Succeeded int      `json:"succeeded"` // periods whose latest run succeeded
	Failed    int      `json:"failed"`    // periods whose latest run ended otherwise (left for the next call)
	Active    int      `json:"active"`    // periods whose run is queued or running
	Waiting   int      `json:"waiting"`   // periods this call has yet to publish
	Published int      `json:"published"` // runs this call published
}

// Done reports whether every period's run has ended.
func (p BackfillProgress) Done() bool { return p.Active == 0 && p.Waiting == 0 }

// backfillPoll is how often a driver looks at its runs: a backfill's runs take seconds to
// minutes, and each look is one indexed query.
const backfillPoll = 250 * time.Millisecond

// DriveBackfill publishes the periods of b that need a run (none yet, or the latest ended
// without succeeding: what failed is re-run by a later call, not this one), keeping at most
// b.MaxActive of its runs queued or running at once, and reports progress after each look.
// It returns once all are published, or, with wait, once all have ended; with
// ErrBackfillCancelled when b is cancelled meanwhile.
func (l *Ledger) DriveBackfill(ctx context.Context, b Backfill, wait bool, now func() time.Time, publish PublishFunc,
	report func(BackfillProgress)) (BackfillProgress, error) {
	periods, err := l.Periods(ctx, b)
	if err != nil {
		return BackfillProgress{}, err
	}
	var todo []int
	for i, p := range periods {
		if p.Pending() {
			todo = append(todo, i)
		}
	}
	published := 0
	tick := time.NewTicker(backfillPoll)
	defer tick.Stop()
	for {
		active := 0
		for _, p := range periods {
			if p.RunID != 0 && !p.Status.Terminal() {
				active++
			}
		}
		for len(todo) > 0 && active < b.MaxActive {
			p := periods[todo[0]]
			run, err := l.StartPeriod(ctx, b, p, now(), publish)
			if err != nil {
				return summarize(b, periods, len(todo), published), err
			}
			todo = todo[1:]
			if run != nil {
				published++
				active++
			}
		}
		prog := summarize(b, periods, len(todo), published)
		prog.Active = active
		if report != nil {
			report(prog)
		}
		if len(todo) == 0 && (!wait || active == 0) {
			return prog, nil
		}
		select {
		case <-ctx.Done():
			return prog, fmt.Errorf("backfill %d: %w", b.ID, ctx.Err())
		case <-tick.C:
		}
		if periods, err = l.Periods(ctx, b); err != nil {
			return prog, err
		}
	}
}

func summarize(b Backfill, periods []Period, waiting, published int) BackfillProgress {
	p := BackfillProgress{Backfill: b, Total: len(periods), Waiting: waiting, Published: published}
	for _, per := range periods {
		switch {
		case per.Status == StatusSucceeded:
			p.Succeeded++
		case per.RunID != 0 && per.Status.Terminal():
			p.Failed++
		case per.RunID != 0:
			p.Active++
		}
	}
	return p
}
