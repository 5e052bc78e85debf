package admin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/admin"
	"github.com/chatplat/job-service/ledger"
)

// TestAPIForceRunAndMetrics is the admin API end to end on the real stack: a run forced through the
// API is refused without the token, runs through RocketMQ with it, shows in the API and the
// console, and /metrics, scraped, counts it.
func TestAPIForceRunAndMetrics(t *testing.T) {
	s := startStack(t)

	code, body := s.do(t, "POST", "/api/jobs/pg_partition/run", "", "")
	require.Equal(t, http.StatusUnauthorized, code, body)
	code, body = s.do(t, "POST", "/api/jobs/pg_partition/run", "not-the-token", "")
	require.Equal(t, http.StatusUnauthorized, code, body)

	code, body = s.do(t, "POST", "/api/jobs/pg_partition/run", token, `{"requested_by":"e2e"}`)
	require.Equal(t, http.StatusAccepted, code, body)
	var forced admin.ForceResponse
	require.NoError(t, json.Unmarshal([]byte(body), &forced))
	runs := s.waitRun(t, forced.RunKey)
	require.Len(t, runs, 1)
	run := runs[0]
	require.Equal(t, ledger.StatusSucceeded, run.Status, run.Error)
	require.Equal(t, "manual", run.Trigger)
	require.Equal(t, "e2e", run.RequestedBy)

	code, body = s.do(t, "GET", "/api/runs/"+strconv.FormatInt(run.ID, 10), "", "")
	require.Equal(t, http.StatusOK, code)
	var d admin.RunDetail
	require.NoError(t, json.Unmarshal([]byte(body), &d))
	require.Len(t, d.Attempts, 1)
	require.Equal(t, "succeeded", d.Attempts[0].Outcome)
	require.Contains(t, string(d.Run.Result), "chat_messages")

	code, body = s.do(t, "GET", "/api/jobs", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"last_status": "succeeded"`)
	require.Contains(t, body, `"next_fire"`)

	code, body = s.do(t, "GET", "/", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, forced.RunKey)
	require.Contains(t, body, fmt.Sprintf(`href="/runs/%d"`, run.ID))

	// Pause and resume reach the ledger the ticker reads.
	code, _ = s.do(t, "POST", "/api/jobs/pg_partition/pause", token, "")
	require.Equal(t, http.StatusOK, code)
	paused, err := s.node.Ledger.Paused(t.Context())
	require.NoError(t, err)
	require.True(t, paused["pg_partition"])
	code, _ = s.do(t, "POST", "/api/jobs/pg_partition/resume", token, "")
	require.Equal(t, http.StatusOK, code)
	paused, err = s.node.Ledger.Paused(t.Context())
	require.NoError(t, err)
	require.False(t, paused["pg_partition"])

	// The scrape shows the run just made.
	code, body = s.do(t, "GET", "/metrics", "", "")
	require.Equal(t, http.StatusOK, code)
	node := s.node.Cfg.Node
	for _, want := range []string{
		fmt.Sprintf(`jobservice_runs_total{job="pg_partition",node="%s",status="succeeded"} 1`, node),
		fmt.Sprintf(`jobservice_run_duration_seconds_count{job="pg_partition",node="%s",status="succeeded"} 1`, node),
		fmt.Sprintf(`jobservice_schedule_delay_seconds_count{job="pg_partition",node="%s"} 1`, node),
		fmt.Sprintf(`jobservice_admin_writes_total{action="run",node="%s",result="denied"} 2`, node),
		fmt.Sprintf(`jobservice_admin_writes_total{action="run",node="%s",result="ok"} 1`, node),
		fmt.Sprintf(`jobservice_ticker_leader{node="%s"} 0`, node),
	} {
		require.Contains(t, body, want)
	}
	require.Regexp(t, regexp.MustCompile(`(?m)^go_goroutines`), body)

	code, body = s.do(t, "GET", "/readyz", "", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"postgres": "ok"`)
}
