package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/consumer"
	"github.com/chatplat/job-service/ledger"
)

var (
	_ consumer.Observer    = (*Metrics)(nil)
	_ ledger.BatchObserver = (*Metrics)(nil)
)

func TestMetricsExposition(t *testing.T) {
	t.Parallel()
	m := New("n1")
	m.RunFinished("pg_partition", ledger.StatusSucceeded, 1500*time.Millisecond, 200*time.Millisecond)
	m.RunFinished("pg_partition", ledger.StatusRetrying, time.Second, -time.Second)
	m.MessageRejected("unknown")
	m.SetLeader(true)
	m.ObjectsDeleted(3, 4096)
	m.ObjectsDeleted(0, 0)
	m.AdminWrite("run", "denied")
	m.LedgerBatch("claim", 40, 3*time.Millisecond, nil)
	m.LedgerBatch("finish", 64, 20*time.Second, errors.New("connection refused"))

	require.Equal(t, 1.0, testutil.ToFloat64(m.runs.WithLabelValues("pg_partition", "succeeded")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.retries.WithLabelValues("pg_partition")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.leader))
	m.SetLeader(false)
	require.Equal(t, 0.0, testutil.ToFloat64(m.leader))
	require.Equal(t, 3.0, testutil.ToFloat64(m.gcObjects))
	require.Equal(t, 4096.0, testutil.ToFloat64(m.gcBytes))

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	for _, want := range []string{
		`jobservice_runs_total{job="pg_partition",node="n1",status="succeeded"} 1`,
		`jobservice_run_duration_seconds_bucket{job="pg_partition",node="n1",status="succeeded",le="2.5"} 1`,
		`jobservice_schedule_delay_seconds_count{job="pg_partition",node="n1"} 2`,
		`jobservice_retries_total{job="pg_partition",node="n1"} 1`,
		`jobservice_rejected_messages_total{job="unknown",node="n1"} 1`,
		`jobservice_ticker_leader{node="n1"} 0`,
		`jobservice_gc_objects_deleted_total{node="n1"} 3`,
		`jobservice_gc_bytes_deleted_total{node="n1"} 4096`,
		`jobservice_admin_writes_total{action="run",node="n1",result="denied"} 1`,
		`jobservice_ledger_batch_size_bucket{node="n1",op="claim",le="64"} 1`,
		`jobservice_ledger_batch_size_bucket{node="n1",op="claim",le="32"} 0`,
		`jobservice_ledger_batch_seconds_bucket{node="n1",op="claim",le="0.005"} 1`,
		`jobservice_ledger_batch_errors_total{node="n1",op="finish"} 1`,
		"go_goroutines",
	} {
		require.True(t, strings.Contains(text, want), "missing %q in:\n%s", want, text)
	}
	// A negative delay is clamped: both observations land in the first bucket or above 0.2s.
	require.Contains(t, text, `jobservice_schedule_delay_seconds_bucket{job="pg_partition",node="n1",le="0.01"} 1`)
}

func TestTwoRegistriesDoNotCollide(t *testing.T) {
	t.Parallel()
	a, b := New("a"), New("b")
	a.MessageRejected("x")
	require.Equal(t, 0.0, testutil.ToFloat64(b.rejected.WithLabelValues("x")))
}
