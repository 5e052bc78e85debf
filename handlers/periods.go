package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/chatplat/job-service/job"
)

// maxBackfillPeriods bounds one backfill: ten years of days is a mistyped range, not a plan.
const maxBackfillPeriods = 3660

// reportDay is the day daily_stats reports for args: the date parameter, else the day before
// ref in loc (the nightly fire reports the day that just ended).
func reportDay(args DailyStatsArgs, ref time.Time, loc *time.Location) (date string, from, to time.Time) {
	var y int
	var m time.Month
	var dd int
	if args.Date != "" {
		t, _ := time.Parse(time.DateOnly, args.Date) // validated
		y, m, dd = t.Date()
	} else {
		y, m, dd = ref.In(loc).AddDate(0, 0, -1).Date()
	}
	// time.Date normalises dd+1 across month ends, and a DST day is 23 or 25 hours long.
	from = time.Date(y, m, dd, 0, 0, 0, 0, loc)
	to = time.Date(y, m, dd+1, 0, 0, 0, 0, loc)
	return from.Format(time.DateOnly), from, to
}

// reportWeek is the ISO week group_activity ranks for args: the week parameter, else the
// week before the one holding ref, in loc.
func reportWeek(args GroupActivityArgs, ref time.Time, loc *time.Location) (label string, from, to time.Time) {
	var y int
	var m time.Month
	var d int
	if args.Week != "" {
		monday, _ := ParseISOWeek(args.Week) // validated
		y, m, d = monday.Date()
	} else {
		ref = ref.In(loc)
		back := (int(ref.Weekday())+6)%7 + 7 // to this week's Monday, then one week more
		y, m, d = ref.AddDate(0, 0, -back).Date()
	}
	from = time.Date(y, m, d, 0, 0, 0, 0, loc)
	to = time.Date(y, m, d+7, 0, 0, 0, 0, loc)
	return ISOWeekLabel(from), from, to
}

// decodeValid decodes params as a run's args are decoded (unknown fields refused, validated).
func decodeValid[T any](params json.RawMessage) (T, error) {
	args, err := job.DecodeArgs[T](params)
	var r *job.RejectError
	if errors.As(err, &r) {
		return args, errors.New(r.Reason)
	}
	return args, err
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil { // args are plain structs of strings
		panic(fmt.Sprintf("encode args: %v", err))
	}
	return b
}

// RunInterval implements job.Dated: a run reports one day, named by its date parameter.
func (c DailyStatsConfig) RunInterval(params json.RawMessage, ref time.Time) (job.Interval, json.RawMessage, error) {
	args, err := decodeValid[DailyStatsArgs](params)
	if err != nil {
		return job.Interval{}, nil, err
	}
	loc, err := time.LoadLocation(c.WithDefaults().TimeZone)
	if err != nil {
		return job.Interval{}, nil, fmt.Errorf("time_zone: %w", err)
	}
	date, from, to := reportDay(args, ref, loc)
	args.Date = date
	return job.Interval{Start: from, End: to}, mustJSON(args), nil
}

// Periods implements job.Dated: one run per day.
func (c DailyStatsConfig) Periods(first, last time.Time, params json.RawMessage) ([]json.RawMessage, error) {
	args, err := decodeValid[DailyStatsArgs](params)
	if err != nil {
		return nil, err
	}
	if args.Date != "" {
		return nil, fmt.Errorf("params: date is set by the backfill, one run per day")
	}
	var out []json.RawMessage
	for d := first; !d.After(last); d = d.AddDate(0, 0, 1) {
		if len(out) == maxBackfillPeriods {
			return nil, fmt.Errorf("range %s..%s has more than %d days", first.Format(time.DateOnly),
				last.Format(time.DateOnly), maxBackfillPeriods)
		}
		args.Date = d.Format(time.DateOnly)
		out = append(out, mustJSON(args))
	}
	return out, nil
}

// RunInterval implements job.Dated: a run ranks one ISO week, named by its week parameter.
func (c GroupActivityConfig) RunInterval(params json.RawMessage, ref time.Time) (job.Interval, json.RawMessage, error) {
	args, err := decodeValid[GroupActivityArgs](params)
	if err != nil {
		return job.Interval{}, nil, err
	}
	loc, err := time.LoadLocation(c.WithDefaults().TimeZone)
	if err != nil {
		return job.Interval{}, nil, fmt.Errorf("time_zone: %w", err)
	}
	week, from, to := reportWeek(args, ref, loc)
	args.Week = week
	return job.Interval{Start: from, End: to}, mustJSON(args), nil
}

// Periods implements job.Dated: one run per ISO week the range of days touches.
func (c GroupActivityConfig) Periods(first, last time.Time, params json.RawMessage) ([]json.RawMessage, error) {
	args, err := decodeValid[GroupActivityArgs](params)
	if err != nil {
		return nil, err
	}
	if args.Week != "" {
		return nil, fmt.Errorf("params: week is set by the backfill, one run per week")
	}
	monday := first.AddDate(0, 0, -((int(first.Weekday()) + 6) % 7))
	var out []json.RawMessage
	for d := monday; !d.After(last); d = d.AddDate(0, 0, 7) {
		if len(out) == maxBackfillPeriods {
			return nil, fmt.Errorf("range has more than %d weeks", maxBackfillPeriods)
		}
		args.Week = ISOWeekLabel(d)
		out = append(out, mustJSON(args))
	}
	return out, nil
}
