package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

func prefixed(prefix, columns string) string {
	parts := strings.Split(columns, ",")
	for i, p := range parts {
		parts[i] = prefix + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// RunFilter narrows ListRuns. Zero values mean no filter.
type RunFilter struct {
	Job    string
	Status Status
	RunKey string
	Since  time.Time
	Limit  int   // default 50, at most 1000
	Before int64 // paging: only ids below this one
	// Backfill: only the runs of this backfill.
	Backfill int64
}

// ListRuns returns runs newest first.
func (l *Ledger) ListRuns(ctx context.Context, f RunFilter) ([]Run, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	f.Limit = min(f.Limit, 1000)
	where := []string{"true"}
	args := []any{}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Job != "" {
		add("job = $%d", f.Job)
	}
	if f.Status != "" {
		add("status = $%d", string(f.Status))
	}
	if f.RunKey != "" {
		add("run_key = $%d", f.RunKey)
	}
	if !f.Since.IsZero() {
		add("created_at >= $%d", f.Since)
	}
	if f.Before > 0 {
		add("id < $%d", f.Before)
	}
	if f.Backfill > 0 {
		add("backfill_id = $%d", f.Backfill)
	}
	args = append(args, f.Limit)
	q := fmt.Sprintf(`SELECT %s FROM job_runs WHERE %s ORDER BY created_at DESC, id DESC LIMIT $%d`,
		runColumns, strings.Join(where, " AND "), len(args))
	rows, err := l.db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return collectRuns(rows)
}

// GetRun returns one run by id.
func (l *Ledger) GetRun(ctx context.Context, id int64) (Run, error) {
	r, err := scanRun(l.db.QueryRow(ctx, `SELECT `+runColumns+` FROM job_runs WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Run{}, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Run{}, fmt.Errorf("get run %d: %w", id, err)
	}
	return r, nil
}

// Attempt is one row of the job_attempts view: an attempt a later one replaced
// (job_past_attempts), or the latest attempt, which lives in its run row.
type Attempt struct {
	Attempt    int        `json:"attempt"`
	Node       string     `json:"node"`
	MsgID      string     `json:"msg_id"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Outcome    string     `json:"outcome"`
	Error      string     `json:"error,omitempty"`
}

// Attempts returns the attempts of a run, first first.
func (l *Ledger) Attempts(ctx context.Context, runID int64) ([]Attempt, error) {
	rows, err := l.db.Query(ctx, `SELECT attempt, node, msg_id, started_at, finished_at, outcome, error
		FROM job_attempts WHERE run_id = $1 ORDER BY attempt`, runID)
	if err != nil {
		return nil, fmt.Errorf("attempts of run %d: %w", runID, err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Attempt])
}

// RunGroup summarises the shard rows of one run key.
type RunGroup struct {
	Job      string
	RunKey   string
	Total    int
	ByStatus map[Status]int
}

// Done reports whether every shard of the run reached a terminal state.
func (g RunGroup) Done() bool {
	n := 0
	for s, c := range g.ByStatus {
		if s.Terminal() {
			n += c
		}
	}
	return g.Total > 0 && n >= g.Total
}

// Succeeded reports whether every shard succeeded.
func (g RunGroup) Succeeded() bool { return g.Total > 0 && g.ByStatus[StatusSucceeded] >= g.Total }

// RunGroupByKey counts the shard rows of a run key by status. Total is the shard total the
// rows declare (shards not yet claimed have no row).
func (l *Ledger) RunGroupByKey(ctx context.Context, jobName, runKey string) (RunGroup, error) {
	g := RunGroup{Job: jobName, RunKey: runKey, ByStatus: map[Status]int{}}
	rows, err := l.db.Query(ctx, `SELECT status, count(*), max(shard_total) FROM job_runs
		WHERE job = $1 AND run_key = $2 GROUP BY status`, jobName, runKey)
	if err != nil {
		return g, fmt.Errorf("run %s/%s: %w", jobName, runKey, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s Status
		var n, total int
		if err := rows.Scan(&s, &n, &total); err != nil {
			return g, fmt.Errorf("run %s/%s: %w", jobName, runKey, err)
		}
		g.ByStatus[s] = n
		g.Total = max(g.Total, total)
	}
	return g, rows.Err()
}

// JobSummary is the last outcome of one job, for jobctl jobs and the console.
type JobSummary struct {
	Job        string
	LastRun    *Run
	Paused     bool
	Running    int
	FailedLast int // failed runs in the last 24 h
}

// Summaries returns the latest run and counters of each job in jobs.
func (l *Ledger) Summaries(ctx context.Context, jobs []string) (map[string]JobSummary, error) {
	out := make(map[string]JobSummary, len(jobs))
	paused, err := l.Paused(ctx)
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		s := JobSummary{Job: j, Paused: paused[j]}
		r, err := scanRun(l.db.QueryRow(ctx, `SELECT `+runColumns+` FROM job_runs
			WHERE job = $1 AND status NOT IN ('scheduled') ORDER BY created_at DESC, id DESC LIMIT 1`, j))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return nil, fmt.Errorf("last run of %s: %w", j, err)
		default:
			s.LastRun = &r
		}
		if err := l.db.QueryRow(ctx, `SELECT
				count(*) FILTER (WHERE status = 'running'),
				count(*) FILTER (WHERE status = 'failed' AND created_at > now() - interval '24 hours')
			FROM job_runs WHERE job = $1 AND created_at > now() - interval '7 days'`, j).Scan(&s.Running, &s.FailedLast); err != nil {
			return nil, fmt.Errorf("counters of %s: %w", j, err)
		}
		out[j] = s
	}
	return out, nil
}

// Pause stops the ticker from publishing jobName. Occurrences it already published ahead of
// their time (ticker.lookahead) and no node claimed yet pass while the job is paused too: they
// are recorded skipped, and their messages find them so. One the ticker records just after
// (it read the paused jobs before the pause) is skipped by its claim (takeOverSQL).
func (l *Ledger) Pause(ctx context.Context, jobName, by string) error {
	_, err := l.db.Exec(ctx, `
		WITH paused AS (
			INSERT INTO job_pauses (job, paused_by) VALUES ($1, $2) ON CONFLICT (job) DO NOTHING)
		UPDATE job_runs SET status = 'skipped', finished_at = now(), updated_at = now(),
			result = jsonb_build_object('skipped', 'paused', 'paused_by', $2::text)
		WHERE job = $1 AND trigger = 'schedule' AND status = 'scheduled' AND scheduled_at > now()`, jobName, by)
	if err != nil {
		return fmt.Errorf("pause %s: %w", jobName, err)
	}
	return nil
}

// Resume lets the ticker publish jobName again.
func (l *Ledger) Resume(ctx context.Context, jobName string) error {
	if _, err := l.db.Exec(ctx, `DELETE FROM job_pauses WHERE job = $1`, jobName); err != nil {
		return fmt.Errorf("resume %s: %w", jobName, err)
	}
	return nil
}

// Paused returns the set of paused jobs.
func (l *Ledger) Paused(ctx context.Context) (map[string]bool, error) {
	rows, err := l.db.Query(ctx, `SELECT job FROM job_pauses`)
	if err != nil {
		return nil, fmt.Errorf("list paused jobs: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list paused jobs: %w", err)
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}

// BacklogEntry counts runs that are due but not started, per job.
type BacklogEntry struct {
	Job       string     `json:"job"`
	Due       int        `json:"due"`
	Retrying  int        `json:"retrying"`
	OldestDue *time.Time `json:"oldest_due,omitempty"`
}

// Backlog returns, per job, scheduled runs whose time has come and that no node took yet.
func (l *Ledger) Backlog(ctx context.Context) ([]BacklogEntry, error) {
	rows, err := l.db.Query(ctx, `SELECT j.job,
			count(*) FILTER (WHERE j.status = 'scheduled' AND j.scheduled_at <= now()),
			count(*) FILTER (WHERE j.status = 'retrying'),
			min(j.scheduled_at) FILTER (WHERE j.status = 'scheduled' AND j.scheduled_at <= now())
		FROM job_runs j
		WHERE j.id = ANY (ARRAY(SELECT id FROM job_runs_inflight))
		  AND j.status IN ('scheduled', 'retrying') GROUP BY j.job ORDER BY j.job`)
	if err != nil {
		return nil, fmt.Errorf("backlog: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[BacklogEntry])
}

// RejectionsOf returns the reasons recorded for rejected messages that named runKey. Such
// rows are keyed by message id (see RecordRejected), so a follower of a run must look here too.
func (l *Ledger) RejectionsOf(ctx context.Context, jobName, runKey string) ([]string, error) {
	rows, err := l.db.Query(ctx, `SELECT error FROM job_runs
		WHERE status = 'rejected' AND job = $1 AND result->>'run_key' = $2 ORDER BY id`, jobName, runKey)
	if err != nil {
		return nil, fmt.Errorf("rejections of %s/%s: %w", jobName, runKey, err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
