package app

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
)

// Real nodes write job_nodes: both are live with their queues and the leader is known; a
// node that stops cleanly shows as stopped, and /metrics carries the build and in-flight gauges.
func TestNodesHeartbeatIntoTheLedger(t *testing.T) {
	c := newCluster(t, `  probe: {max_attempts: 1}`)
	a := c.start("a", true)
	b := c.start("b", false)
	l := ledger.New(c.schema.Pool)
	stale := a.Cfg.Consumer.WithDefaults().StaleAfter
	testenv.Eventually(t, 60*time.Second, func() bool {
		nodes, err := l.Nodes(context.Background(), time.Now(), stale, time.Hour)
		if err != nil || len(nodes) != 2 {
			return false
		}
		for _, n := range nodes {
			if n.State != ledger.NodeLive || len(n.Queues) == 0 {
				return false
			}
		}
		return nodes[0].Leader && !nodes[1].Leader
	}, "both nodes live, each holding queues, a leading the ticker")

	rec := httptest.NewRecorder()
	a.Metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	require.Contains(t, body, "job_service_build_info{")
	require.Contains(t, body, `jobservice_runs_in_flight{node="a"} 0`)
	require.True(t, strings.Contains(body, `jobservice_due_backlog{job="probe",node="a"} 0`), "ledger gauges per job")

	require.NoError(t, b.Stop(context.Background()))
	nodes, err := l.Nodes(context.Background(), time.Now(), stale, time.Hour)
	require.NoError(t, err)
	require.Len(t, nodes, 2)
	require.Equal(t, "b", nodes[1].Node)
	require.Equal(t, ledger.NodeStopped, nodes[1].State)
	require.Empty(t, nodes[1].Queues)
}
