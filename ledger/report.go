package ledger

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// ReportDay counts the runs of one job created on one day (in the report's zone) by outcome.
// Other is every run that neither succeeded nor failed: skipped, rejected, abandoned,
// interrupted and the ones still under way.
type ReportDay struct {
	Day       string `json:"day"` // 2026-11-30
	Job       string `json:"job"`
	Succeeded int    `json:"succeeded"`
	Failed    int    `json:"failed"`
	Other     int    `json:"other"`
}

// RunReport counts runs per job and day from the start of the day days-1 before now to now,
// days bounded in loc. Days without runs are absent; Report fills them.
func (l *Ledger) RunReport(ctx context.Context, now time.Time, days int, loc *time.Location) ([]ReportDay, error) {
	y, m, d := now.In(loc).Date()
	from := time.Date(y, m, d-days+1, 0, 0, 0, 0, loc)
	rows, err := l.db.Query(ctx, `SELECT to_char(created_at AT TIME ZONE $2, 'YYYY-MM-DD') AS day, job,
			count(*) FILTER (WHERE status = 'succeeded'),
			count(*) FILTER (WHERE status = 'failed'),
			count(*) FILTER (WHERE status NOT IN ('succeeded', 'failed'))
		FROM job_runs WHERE created_at >= $1
		GROUP BY 1, 2 ORDER BY 1, 2`, from, loc.String())
	if err != nil {
		return nil, fmt.Errorf("run report since %s: %w", from.Format(time.DateOnly), err)
	}
	defer rows.Close()
	var out []ReportDay
	for rows.Next() {
		var r ReportDay
		if err := rows.Scan(&r.Day, &r.Job, &r.Succeeded, &r.Failed, &r.Other); err != nil {
			return nil, fmt.Errorf("run report: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ReportDays lists the days of a report window, oldest first.
func ReportDays(now time.Time, days int, loc *time.Location) []string {
	y, m, d := now.In(loc).Date()
	out := make([]string, 0, days)
	for i := days - 1; i >= 0; i-- {
		out = append(out, time.Date(y, m, d-i, 0, 0, 0, 0, loc).Format(time.DateOnly))
	}
	return out
}

// Totals folds per-job rows into one row per day over all jobs (Job "") and fills days
// without runs with zeros, oldest first.
func Totals(rows []ReportDay, days []string, job string) []ReportDay {
	by := make(map[string]*ReportDay, len(days))
	out := make([]ReportDay, len(days))
	for i, d := range days {
		out[i] = ReportDay{Day: d, Job: job}
		by[d] = &out[i]
	}
	for _, r := range rows {
		if job != "" && r.Job != job {
			continue
		}
		if t := by[r.Day]; t != nil {
			t.Succeeded += r.Succeeded
			t.Failed += r.Failed
			t.Other += r.Other
		}
	}
	return out
}

func sortStable[T any](s []T, less func(a, b T) bool) {
	slices.SortStableFunc(s, func(a, b T) int {
		switch {
		case less(a, b):
			return -1
		case less(b, a):
			return 1
		}
		return 0
	})
}
