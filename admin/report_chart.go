package admin

import (
	"fmt"
	"strconv"

	"github.com/chatplat/job-service/ledger"
)

// ReportChart is the run report as stacked bars, one per day (succeeded at the bottom, then
// failed, then other), laid out server-side like Chart.
type ReportChart struct {
	Job           string // "" for all jobs
	Width, Height int
	Bars          []ReportBar
	MaxLabel      string
	From, To      string
	Succeeded     int
	Failed        int
	Other         int
	Empty         bool
}

// ReportBar is one day.
type ReportBar struct {
	Day   string
	X, W  float64
	Parts []ReportPart // bottom first; parts of zero height are left out
}

// ReportPart is one colored segment of a bar.
type ReportPart struct {
	Status string // succeeded, failed, other
	Y, H   float64
	Count  int
	Title  string
}

func buildReportChart(job string, days []ledger.ReportDay) ReportChart {
	c := ReportChart{Job: job, Width: chartW, Height: chartH}
	if len(days) == 0 {
		c.Empty = true
		return c
	}
	c.From, c.To = days[0].Day, days[len(days)-1].Day
	top := 0
	for _, d := range days {
		top = max(top, d.Succeeded+d.Failed+d.Other)
		c.Succeeded += d.Succeeded
		c.Failed += d.Failed
		c.Other += d.Other
	}
	if top == 0 {
		c.Empty = true
		return c
	}
	top = niceCount(top)
	c.MaxLabel = strconv.Itoa(top)
	plotW := float64(chartW - chartPadL - chartPadR)
	plotH := float64(chartH - chartPadT - chartPadB)
	slot := plotW / float64(len(days))
	for i, d := range days {
		b := ReportBar{Day: d.Day, X: round1(float64(chartPadL) + slot*float64(i) + slot*0.1), W: round1(slot * 0.8)}
		base := float64(chartPadT) + plotH
		for _, p := range []struct {
			status string
			n      int
		}{{"succeeded", d.Succeeded}, {"failed", d.Failed}, {"other", d.Other}} {
			if p.n == 0 {
				continue
			}
			h := plotH * float64(p.n) / float64(top)
			base -= h
			b.Parts = append(b.Parts, ReportPart{Status: p.status, Y: round1(base), H: round1(h), Count: p.n,
				Title: fmt.Sprintf("%s: %d %s", d.Day, p.n, p.status)})
		}
		c.Bars = append(c.Bars, b)
	}
	return c
}

// niceCount rounds a count up to 1, 2 or 5 times a power of ten.
func niceCount(n int) int {
	step := 1
	for {
		for _, m := range []int{1, 2, 5} {
			if m*step >= n {
				return m * step
			}
		}
		step *= 10
	}
}
