package ledger

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatplat/job-service/job"
)

// StatusCancelled is the terminal status of a run an operator cancelled.
const StatusCancelled Status = "cancelled"

// Sentinels the admin API and jobctl answer with 409 / a clear line.
var (
	ErrNotCancellable = errors.New("run already finished")
	ErrNotRetryable   = errors.New("only a failed or cancelled run can be retried")
	// ErrRecordedCancelled: the outcome was recorded as cancelled instead of the status asked
	// for, because an operator asked to cancel the run while the attempt ran. The run is
	// finished: its message is acknowledged, never retried, and nobody is alerted.
	ErrRecordedCancelled = errors.New("recorded cancelled: an operator asked to cancel the run")
)

// CancelledError is the outcome error of a run an operator cancelled.
type CancelledError struct{ By string }

func (e *CancelledError) Error() string { return "cancelled by " + e.By }

// RequestCancel asks for run id to stop, on behalf of by. A run that is not running now
// (scheduled, retrying, interrupted, abandoned) is cancelled at once: its message, when it
// comes, finds it finished. A running run keeps running until the node holding it sees the
// request in its next heartbeat (CancelRequests) and cancels the handler's context; the
// returned status is then "running". One statement, so a claim racing with the request is
// seen either before it (the request waits for the node) or after it (nothing to claim).
func (l *Ledger) RequestCancel(ctx context.Context, id int64, by string) (Status, error) {
	var st Status
	// The run row carries its latest attempt (see job_attempts): a run cancelled between
	// attempts first moves that attempt, with its own outcome, to job_past_attempts.
	err := l.db.QueryRow(ctx, `
		WITH prev AS (
			SELECT id, attempt, node, msg_id, started_at, finished_at, updated_at, status, error FROM job_runs
			WHERE id = $1 AND status IN ('retrying', 'interrupted', 'abandoned') FOR UPDATE),
		archived AS (
			INSERT INTO job_past_attempts (run_id, attempt, node, msg_id, started_at, finished_at, outcome, error)
			SELECT id, attempt, node, msg_id, started_at, coalesce(finished_at, updated_at), status, error
			FROM prev WHERE attempt > 0 AND started_at IS NOT NULL
			ON CONFLICT (run_id, attempt) DO NOTHING)
		UPDATE job_runs SET cancel_requested_by = $2, cancel_requested_at = now(), updated_at = now(),
			status = CASE WHEN status = 'running' THEN status ELSE 'cancelled' END,
			finished_at = CASE WHEN status = 'running' THEN finished_at ELSE now() END,
			error = CASE WHEN status = 'running' THEN error ELSE 'cancelled by ' || $2 END
		WHERE id = $1 AND status IN ('scheduled', 'running', 'retrying', 'interrupted', 'abandoned')
		RETURNING status`, id, pgText(by)).Scan(&st)
	if errors.Is(err, pgx.ErrNoRows) {
		r, gerr := l.GetRun(ctx, id)
		if gerr != nil {
			return "", gerr
		}
		return r.Status, fmt.Errorf("cancel run %d: %w (%s)", id, ErrNotCancellable, r.Status)
	}
	if err != nil {
		return "", fmt.Errorf("cancel run %d: %w", id, err)
	}
	return st, nil
}

// RunControl is what the ledger says about one run's control fields.
type RunControl struct {
	CancelRequestedBy string     `json:"cancel_requested_by,omitempty"`
	CancelRequestedAt *time.Time `json:"cancel_requested_at,omitempty"`
	RetryOf           int64      `json:"retry_of,omitempty"`
	RetriedAs         []int64    `json:"retried_as,omitempty"`
	// Retries are the runs that retry this one, with who asked and when (RetriedAs's ids).
	Retries []RetryLink `json:"retries,omitempty"`
}

// RetryLink is one retry of a run: the new run, who asked for it and when.
type RetryLink struct {
	ID          int64     `json:"id"`
	RequestedBy string    `json:"requested_by"`
	RequestedAt time.Time `json:"requested_at"`
	Status      Status    `json:"status"`
}

// Control returns the cancel request and retry links of run id.
func (l *Ledger) Control(ctx context.Context, id int64) (RunControl, error) {
	var c RunControl
	var by *string
	var retryOf *int64
	err := l.db.QueryRow(ctx, `SELECT cancel_requested_by, cancel_requested_at, retry_of,
			coalesce((SELECT array_agg(id ORDER BY id) FROM job_runs WHERE retry_of = $1), '{}')
		FROM job_runs WHERE id = $1`, id).Scan(&by, &c.CancelRequestedAt, &retryOf, &c.RetriedAs)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("control fields of run %d: %w", id, err)
	}
	if by != nil {
		c.CancelRequestedBy = *by
	}
	if retryOf != nil {
		c.RetryOf = *retryOf
	}
	if len(c.RetriedAs) == 0 {
		return c, nil
	}
	// A retry is a run of its own: its requested_by and created_at say who asked and when.
	rows, err := l.db.Query(ctx, `SELECT id, requested_by, created_at, status FROM job_runs
		WHERE retry_of = $1 ORDER BY id`, id)
	if err != nil {
		return c, fmt.Errorf("retries of run %d: %w", id, err)
	}
	if c.Retries, err = pgx.CollectRows(rows, pgx.RowToStructByPos[RetryLink]); err != nil {
		return c, fmt.Errorf("retries of run %d: %w", id, err)
	}
	return c, nil
}

// RetryKey is the run key of an operator's retry of run id, unique per request.
func RetryKey(id int64, now time.Time) string {
	return "retry:" + strconv.FormatInt(id, 10) + "@" + strconv.FormatInt(now.UnixMilli(), 10)
}

// DLQRetryKey is the run key of the retry a resend from the dead-letter queue asks for: one
// per run and message, so resending the same dead letter twice retries once.
func DLQRetryKey(id int64, msgID string) string {
	return "retry:" + strconv.FormatInt(id, 10) + ":dlq-" + msgID
}

// PublishFunc sends a run's message; the admin server, jobctl and the consumer pass their
// producer's.
type PublishFunc func(ctx context.Context, env job.Envelope) (msgID string, err error)

// Retry re-runs a failed or cancelled run as a new run under runKey: same job, shard and
// params, the same interval (the period the original stood for: its recorded interval, else
// the one its scheduled time gives), a fresh attempt budget and fresh logs, retry_of pointing
// at the original and requested_by saying who asked. The params are rewritten to name the
// period (daily_stats' date), so a retry of day D's report days later reports day D. The row
// is recorded scheduled before the message is published, like the ticker does, so a publish
// that fails is repaired by the ticker's unpublished-row pass. created is false when runKey
// already existed (nothing published).
func (l *Ledger) Retry(ctx context.Context, id int64, by, runKey string, publish PublishFunc) (r Run, created bool, err error) {
	orig, err := l.GetRun(ctx, id)
	if err != nil {
		return Run{}, false, err
	}
	if orig.Status != StatusFailed && orig.Status != StatusCancelled {
		return Run{}, false, fmt.Errorf("retry run %d: %w (it is %s)", id, ErrNotRetryable, orig.Status)
	}
	env, iv, err := l.pin(orig.Envelope(), orig.ScheduledAt)
	if err != nil {
		return Run{}, false, fmt.Errorf("retry run %d: %w", id, err)
	}
	if stored := orig.Interval(); !stored.IsZero() {
		iv = stored
	}
	r, err = scanRun(l.db.QueryRow(ctx, `
		INSERT INTO job_runs (job, run_key, shard_index, shard_total, trigger, scheduled_at, params, requested_by,
			status, retry_of, logical_start, logical_end, backfill_id)
		SELECT job, $2, shard_index, shard_total, 'manual', now(), $4, $3, 'scheduled', id, $5, $6, backfill_id
		FROM job_runs WHERE id = $1 AND status IN ('failed', 'cancelled')
		ON CONFLICT (job, run_key, shard_index) DO NOTHING
		RETURNING `+runColumns, id, runKey, pgText(by), paramsOrEmpty(env.Params), iv.Start, iv.End))
	if errors.Is(err, pgx.ErrNoRows) {
		orig, gerr := l.GetRun(ctx, id)
		if gerr != nil {
			return Run{}, false, gerr
		}
		if orig.Status != StatusFailed && orig.Status != StatusCancelled {
			return Run{}, false, fmt.Errorf("retry run %d: %w (it is %s)", id, ErrNotRetryable, orig.Status)
		}
		existing, lerr := l.ListRuns(ctx, RunFilter{Job: orig.Job, RunKey: runKey, Limit: 1})
		if lerr != nil || len(existing) == 0 {
			return Run{}, false, fmt.Errorf("retry run %d: run key %s taken but not found: %v", id, runKey, lerr)
		}
		return existing[0], false, nil
	}
	if err != nil {
		return Run{}, false, fmt.Errorf("retry run %d: %w", id, err)
	}
	sent, err := l.publishRecorded(ctx, []Run{r}, publish)
	if err != nil {
		return r, true, fmt.Errorf("retry run %d: %w", id, err)
	}
	return sent[0], true, nil
}
