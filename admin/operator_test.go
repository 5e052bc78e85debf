package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// fakeCluster answers with fixed nodes and report rows; the SQL behind them is tested in
// ledger (TestNodesLiveGoneStopped, TestRunReportCountsPerDayInZone).
type fakeCluster struct {
	nodes []ledger.NodeInfo
	rows  []ledger.ReportDay
	stale time.Duration
}

func (f *fakeCluster) Nodes(_ context.Context, _ time.Time, staleAfter, _ time.Duration) ([]ledger.NodeInfo, error) {
	f.stale = staleAfter
	return f.nodes, nil
}

func (f *fakeCluster) Backlog(context.Context) ([]ledger.BacklogEntry, error) {
	return []ledger.BacklogEntry{{Job: "pg_partition", Due: 2}}, nil
}

func (f *fakeCluster) RunReport(context.Context, time.Time, int, *time.Location) ([]ledger.ReportDay, error) {
	return f.rows, nil
}

func newOperatorServer(t *testing.T) (*httptest.Server, *fakeCluster) {
	t.Helper()
	now := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)
	fc := &fakeCluster{
		nodes: []ledger.NodeInfo{
			{Node: "a", State: ledger.NodeLive, Version: "v1.2", StartedAt: now.Add(-time.Hour), HeartbeatAt: now,
				InFlight: 2, Leader: true, Queues: []string{"broker-a/jobs/0"}},
			{Node: "b", State: ledger.NodeGone, Version: "v1.1", StartedAt: now.Add(-2 * time.Hour), HeartbeatAt: now.Add(-5 * time.Minute)},
		},
		rows: []ledger.ReportDay{
			{Day: "2026-12-01", Job: "pg_partition", Succeeded: 7, Failed: 2, Other: 1},
			{Day: "2026-11-30", Job: "probe", Succeeded: 3},
		},
	}
	srv := New(config.AdminConfig{}, Deps{
		Node: "a", Ledger: &fakeLedger{paused: map[string]string{}}, Publisher: &fakePublisher{},
		Kinds: func() []string { return []string{"pg_partition", "probe"} },
		Spec: func(k string) job.Spec {
			if k == "pg_partition" {
				return job.Spec{Schedule: "0 30 2 * * *", TimeZone: "Asia/Shanghai"}.WithDefaults()
			}
			return job.Spec{}.WithDefaults()
		},
		Cluster: fc, StaleAfter: 30 * time.Second,
		Now: func() time.Time { return now },
	})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts, fc
}

func TestAPINextFires(t *testing.T) {
	t.Parallel()
	ts, _ := newOperatorServer(t)
	code, body := do(t, "GET", ts.URL+"/api/jobs/pg_partition/next?n=3", "", "")
	require.Equal(t, http.StatusOK, code, body)
	var nf NextFires
	require.NoError(t, json.Unmarshal([]byte(body), &nf))
	require.Len(t, nf.Next, 3)
	require.Equal(t, "Asia/Shanghai", nf.TimeZone)
	require.Contains(t, body, "T02:30:00+08:00", "times are in the job's zone")
	// 20:00 UTC on Dec 1 is 04:00 on Dec 2 in Shanghai: the next 02:30 is on Dec 3.
	require.Equal(t, time.Date(2026, 12, 2, 18, 30, 0, 0, time.UTC), nf.Next[0].UTC())

	code, body = do(t, "GET", ts.URL+"/api/jobs", "", "")
	require.Equal(t, http.StatusOK, code)
	var jobs struct{ Jobs []JobView }
	require.NoError(t, json.Unmarshal([]byte(body), &jobs))
	require.Len(t, jobs.Jobs[0].NextFires, nextFiresShown)
	require.Empty(t, jobs.Jobs[1].NextFires, "a manual-only job has no fire times")

	code, _ = do(t, "GET", ts.URL+"/api/jobs/pg_partition/next?n=0", "", "")
	require.Equal(t, http.StatusBadRequest, code)
	code, _ = do(t, "GET", ts.URL+"/api/jobs/nope/next", "", "")
	require.Equal(t, http.StatusNotFound, code)

	code, body = do(t, "GET", ts.URL+"/jobs/pg_partition", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `id="next-fires"`)
	require.Contains(t, body, "2026-12-03 02:30:00 CST (Thu)")
}

func TestAPINodesAndPage(t *testing.T) {
	t.Parallel()
	ts, fc := newOperatorServer(t)
	code, body := do(t, "GET", ts.URL+"/api/nodes", "", "")
	require.Equal(t, http.StatusOK, code, body)
	var v NodesView
	require.NoError(t, json.Unmarshal([]byte(body), &v))
	require.Equal(t, 1, v.Live)
	require.Equal(t, "a", v.Leader)
	require.Equal(t, 30*time.Second, fc.stale, "the configured stale_after decides who is gone")
	require.Equal(t, ledger.NodeGone, v.Nodes[1].State)

	code, body = do(t, "GET", ts.URL+"/nodes", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `data-node="b" data-state="gone"`)
	require.Contains(t, body, "broker-a/jobs/0")
	require.Contains(t, body, "<b>leader</b>")
}

func TestAPIReportAndChart(t *testing.T) {
	t.Parallel()
	ts, _ := newOperatorServer(t)
	code, body := do(t, "GET", ts.URL+"/api/report", "", "")
	require.Equal(t, http.StatusOK, code, body)
	var rep Report
	require.NoError(t, json.Unmarshal([]byte(body), &rep))
	require.Len(t, rep.Days, reportDays)
	require.Equal(t, ledger.ReportDay{Day: "2026-12-01", Succeeded: 7, Failed: 2, Other: 1}, rep.Total[29])
	require.Equal(t, 3, rep.Total[28].Succeeded)
	require.Equal(t, 0, rep.Jobs["pg_partition"][28].Succeeded)
	code, _ = do(t, "GET", ts.URL+"/api/report?days=0", "", "")
	require.Equal(t, http.StatusBadRequest, code)

	code, body = do(t, "GET", ts.URL+"/", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `id="report-chart" data-report="all"`)
	require.Contains(t, body, `data-day="2026-12-01" data-count="7"`)
	require.Contains(t, body, `class="bar-failed" data-day="2026-12-01" data-count="2"`)
	require.Equal(t, 3, strings.Count(body, `data-day="2026-12-01"`), "one segment per outcome")
}

func TestReportChartScalesToTallestDay(t *testing.T) {
	t.Parallel()
	c := buildReportChart("", []ledger.ReportDay{{Day: "d1", Succeeded: 3}, {Day: "d2", Succeeded: 10, Failed: 8}})
	require.Equal(t, "20", c.MaxLabel)
	require.Len(t, c.Bars, 2)
	full := float64(chartH - chartPadT - chartPadB)
	require.InDelta(t, full*18/20, c.Bars[1].Parts[0].H+c.Bars[1].Parts[1].H, 0.2)
	require.True(t, buildReportChart("", []ledger.ReportDay{{Day: "d1"}}).Empty)
}
