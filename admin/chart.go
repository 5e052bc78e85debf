package admin

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chatplat/job-service/ledger"
)

// Chart is a duration chart of one job's runs, laid out server-side as SVG coordinates so the
// console needs no script to draw it.
type Chart struct {
	Job           string
	Width, Height int
	Days          int
	Line          string // polyline points "x,y x,y"
	Points        []ChartPoint
	MaxLabel      string // the y axis top
	From, To      string // the x axis ends
	Runs          int
	Empty         bool
}

// ChartPoint is one finished run.
type ChartPoint struct {
	X, Y   float64
	Status string
	Title  string // tooltip
	RunID  int64
}

const (
	chartW, chartH = 640, 160
	chartPadL      = 48 // room for the y label
	chartPadR      = 8
	chartPadT      = 10
	chartPadB      = 20 // room for the x labels
)

// buildChart places runs (any order) that have a duration on a time × duration plane spanning
// the last days up to now.
func buildChart(jobName string, runs []ledger.Run, now time.Time, days int) Chart {
	c := Chart{Job: jobName, Width: chartW, Height: chartH, Days: days}
	from := now.Add(-time.Duration(days) * 24 * time.Hour)
	c.From, c.To = from.UTC().Format("Jan 2 15:04"), now.UTC().Format("Jan 2 15:04")
	type pt struct {
		at  time.Time
		dur time.Duration
		r   ledger.Run
	}
	var pts []pt
	var maxDur time.Duration
	for _, r := range runs {
		if r.StartedAt == nil || r.FinishedAt == nil || r.StartedAt.Before(from) {
			continue
		}
		d := r.Duration()
		pts = append(pts, pt{at: *r.StartedAt, dur: d, r: r})
		maxDur = max(maxDur, d)
	}
	c.Runs = len(pts)
	if len(pts) == 0 {
		c.Empty = true
		return c
	}
	// Oldest first, so the line runs left to right.
	slices.SortFunc(pts, func(a, b pt) int { return a.at.Compare(b.at) })
	// A job that only started running recently would be squeezed against the right edge of a
	// seven-day axis: start the axis a little before its first run instead.
	if first := pts[0].at; first.After(from) {
		from = first.Add(-max(now.Sub(first)/20, time.Second))
		c.From = from.UTC().Format("Jan 2 15:04:05")
		c.To = now.UTC().Format("Jan 2 15:04:05")
	}
	top := niceCeil(maxDur)
	c.MaxLabel = fmtDuration(top)
	plotW := float64(chartW - chartPadL - chartPadR)
	plotH := float64(chartH - chartPadT - chartPadB)
	span := now.Sub(from).Seconds()
	var line []string
	for _, p := range pts {
		x := float64(chartPadL) + plotW*p.at.Sub(from).Seconds()/span
		y := float64(chartPadT) + plotH*(1-p.dur.Seconds()/top.Seconds())
		x, y = round1(x), round1(y)
		line = append(line, strconv.FormatFloat(x, 'f', 1, 64)+","+strconv.FormatFloat(y, 'f', 1, 64))
		c.Points = append(c.Points, ChartPoint{X: x, Y: y, Status: string(p.r.Status), RunID: p.r.ID,
			Title: fmt.Sprintf("run %d %s: %s at %s", p.r.ID, p.r.Status, fmtDuration(p.dur),
				p.at.UTC().Format(time.DateTime))})
	}
	c.Line = strings.Join(line, " ")
	return c
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// niceCeil rounds a duration up to a readable axis top (1, 2 or 5 times a power of ten of
// milliseconds or seconds).
func niceCeil(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Second
	}
	step := time.Millisecond
	for {
		for _, m := range []time.Duration{1, 2, 5} {
			if m*step >= d {
				return m * step
			}
		}
		step *= 10
	}
}

func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}
