package job

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Interval is the span of time a run stands for, [Start, End): the day daily_stats reports,
// the ISO week group_activity ranks, or, for a job without such a period, the instant of its
// occurrence (Start == End). It is decided when the run is recorded and never recomputed.
type Interval struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// IsZero reports an interval nobody decided (a row written by an older release).
func (iv Interval) IsZero() bool { return iv.Start.IsZero() && iv.End.IsZero() }

// String is "2026-11-01T00:00:00Z..2026-11-02T00:00:00Z", or the instant alone.
func (iv Interval) String() string {
	if iv.IsZero() {
		return "-"
	}
	if iv.Start.Equal(iv.End) {
		return iv.Start.Format(time.RFC3339)
	}
	return iv.Start.Format(time.RFC3339) + ".." + iv.End.Format(time.RFC3339)
}

// Dated is the config section of a job whose runs each stand for a period named in their
// params (daily_stats' date, group_activity's week); the section knows the time zone that
// bounds the period.
type Dated interface {
	// RunInterval returns the period a run with params stands for when its reference time is
	// ref (a fire's occurrence, or the moment a forced run was asked for), and the params
	// naming that period explicitly, so whoever runs the message, whenever, does that period.
	RunInterval(params json.RawMessage, ref time.Time) (Interval, json.RawMessage, error)
	// Periods returns the params of each period that starts on a day from first to last
	// (dates, inclusive, in the section's zone), oldest first: what a backfill runs.
	Periods(first, last time.Time, params json.RawMessage) ([]json.RawMessage, error)
}

// ErrNoPeriod is returned for a backfill of a job whose runs stand for no period.
var ErrNoPeriod = errors.New("the job's runs stand for no period (no date or week parameter)")

// Pin decides what env stands for, its reference time being ref: for a job whose section
// (sections[env.Job], as config.Config.Sections holds them) is Dated, the period its params
// name, else the one ref falls in, with the params rewritten to name it; for any other job,
// the instant ref. A retry pins with the original's reference time, so it does the same work.
func Pin(sections map[string]any, env Envelope, ref time.Time) (Envelope, Interval, error) {
	d, ok := sections[env.Job].(Dated)
	if !ok {
		return env, Interval{Start: ref.UTC(), End: ref.UTC()}, nil
	}
	iv, params, err := d.RunInterval(env.Params, ref)
	if err != nil {
		return env, Interval{}, &RejectError{Field: "params", Reason: err.Error()}
	}
	env.Params = params
	return env, Interval{Start: iv.Start.UTC(), End: iv.End.UTC()}, nil
}

// Periods returns the params of the runs a backfill of jobName from first to last makes, one
// per period; ErrNoPeriod when the job has none.
func Periods(sections map[string]any, jobName string, first, last time.Time, params json.RawMessage) ([]json.RawMessage, error) {
	d, ok := sections[jobName].(Dated)
	if !ok {
		return nil, fmt.Errorf("backfill %s: %w", jobName, ErrNoPeriod)
	}
	if last.Before(first) {
		return nil, fmt.Errorf("backfill %s: --to %s is before --from %s", jobName,
			last.Format(time.DateOnly), first.Format(time.DateOnly))
	}
	return d.Periods(first, last, params)
}

// BackfillConcurrency is how many runs of a backfill of a job with spec may be queued or
// running at once, asked being the operator's limit (0 for the default). A job whose overlap
// policy is skip_if_running skips a run that starts while another runs, so its backfill runs
// one period at a time.
func BackfillConcurrency(spec Spec, asked int) (int, error) {
	skips := spec.Overlap == OverlapSkipIfRunning
	switch {
	case asked < 0:
		return 0, fmt.Errorf("max active %d: want 1 or more", asked)
	case asked > 1 && skips:
		return 0, fmt.Errorf("max active %d: the job's overlap policy is skip_if_running, so its runs cannot overlap; use 1", asked)
	case asked > 0:
		return asked, nil
	case skips:
		return 1, nil
	}
	return 4, nil
}
