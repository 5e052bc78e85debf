package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/ledger"
)

type fakeView struct {
	last map[string]time.Time
	err  error
}

func (f fakeView) LastSuccess(context.Context, []string) (map[string]time.Time, error) {
	return f.last, f.err
}

func (f fakeView) Backlog(context.Context) ([]ledger.BacklogEntry, error) {
	old := time.Now().Add(-90 * time.Second)
	return []ledger.BacklogEntry{{Job: "a", Due: 4, Retrying: 1, OldestDue: &old}}, f.err
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return string(b)
}

func TestRunsCountRunsAttemptsCountAttempts(t *testing.T) {
	t.Parallel()
	m := New("n1")
	m.RunFinished("a", ledger.StatusRetrying, time.Second, 0)
	m.RunFinished("a", ledger.StatusInterrupted, time.Second, 0)
	m.RunFinished("a", ledger.StatusFailed, time.Second, 0)
	require.Equal(t, 1.0, testutil.ToFloat64(m.runs.WithLabelValues("a", "failed")))
	require.Equal(t, 0, testutil.CollectAndCount(m.runs, "jobservice_runs_total")-1, "only the final outcome is a run")
	require.Equal(t, 3, testutil.CollectAndCount(m.op.attempts, "jobservice_attempts_total"))
}

func TestOperatorGaugesAndLedgerCollector(t *testing.T) {
	t.Parallel()
	m := New("n1")
	m.SetInFlight(3)
	m.AlertDeliveryFailed("webhook")
	m.SetBuildInfo("v1.2.3", "abc", "go1.x")
	m.SetBuildInfo("v9", "", "") // a second call changes nothing
	at := time.Unix(1_764_000_000, 0)
	m.WatchLedger(fakeView{last: map[string]time.Time{"a": at}}, func() []string { return []string{"a", "b"} })
	body := scrape(t, m)
	for _, want := range []string{
		`jobservice_runs_in_flight{node="n1"} 3`,
		`jobservice_alert_deliveries_failed_total{channel="webhook",node="n1"} 1`,
		`job_service_build_info{go_version="go1.x",node="n1",revision="abc",version="v1.2.3"} 1`,
		`jobservice_last_success_timestamp_seconds{job="a",node="n1"} 1.764e+09`,
		`jobservice_due_backlog{job="a",node="n1"} 4`,
		`jobservice_due_backlog{job="b",node="n1"} 0`,
		`jobservice_retrying_runs{job="a",node="n1"} 1`,
		`jobservice_ledger_scrape_ok{node="n1"} 1`,
	} {
		require.Contains(t, body, want)
	}
	require.NotContains(t, body, `version="v9"`)

	down := New("n2")
	down.WatchLedger(fakeView{err: errors.New("connection refused")}, func() []string { return []string{"a"} })
	require.Contains(t, scrape(t, down), `jobservice_ledger_scrape_ok{node="n2"} 0`)
}
