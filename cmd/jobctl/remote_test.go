package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/admin"
	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// TestServerModeReadsAndWritesThroughTheAPI: with --server, jobctl needs no config at all (the
// config path below does not exist) and every answer comes from the node's admin API over a
// real ledger.
func TestServerModeReadsAndWritesThroughTheAPI(t *testing.T) {
	s := testenv.NewSchema(t)
	ctx := context.Background()
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	l := ledger.New(s.Pool)
	now := time.Now()
	require.NoError(t, l.BeatNode(ctx, ledger.NodeBeat{Node: "node-a", Version: "v9", StartedAt: now, InFlight: 1, Leader: true}, now))
	require.NoError(t, l.BeatNode(ctx, ledger.NodeBeat{Node: "node-b", Version: "v8", StartedAt: now.Add(-time.Hour)}, now.Add(-10*time.Minute)))
	var runID int64
	require.NoError(t, s.Pool.QueryRow(ctx, `INSERT INTO job_runs (job, run_key, trigger, scheduled_at, status)
		VALUES ('pg_partition', 'k1', 'manual', now(), 'failed') RETURNING id`).Scan(&runID))

	// An operator's cancel request on it, and a retry of it by another.
	_, err := s.Pool.Exec(ctx, `UPDATE job_runs SET cancel_requested_by = 'alice@console', cancel_requested_at = now() WHERE id = $1`, runID)
	require.NoError(t, err)
	var retryID int64
	require.NoError(t, s.Pool.QueryRow(ctx, `INSERT INTO job_runs (job, run_key, trigger, scheduled_at, status, requested_by, retry_of)
		VALUES ('pg_partition', 'retry:k1', 'manual', now(), 'scheduled', 'bob@jobctl', $1) RETURNING id`, runID).Scan(&retryID))

	cfg := config.AdminConfig{Token: "tok-for-tests"}
	srv := admin.New(cfg, admin.Deps{Node: "node-a", Ledger: l, Cluster: l, Runs: l, StaleAfter: 30 * time.Second,
		Kinds: handlers.Kinds, Spec: func(string) job.Spec { return job.Spec{Schedule: "0 0 3 * * *", TimeZone: "Asia/Tokyo"}.WithDefaults() }})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	t.Setenv(tokenEnv, "tok-for-tests")
	noConfig := "/nonexistent/jobctl.yaml"

	out, err := jobctl(t, noConfig, "--server", ts.URL, "--json", "nodes")
	require.NoError(t, err, out)
	var nv admin.NodesView
	require.NoError(t, json.Unmarshal([]byte(out), &nv))
	require.Len(t, nv.Nodes, 2)
	require.Equal(t, ledger.NodeLive, nv.Nodes[0].State)
	require.Equal(t, ledger.NodeGone, nv.Nodes[1].State, "10 minutes without a heartbeat is gone")

	out, err = jobctl(t, noConfig, "--server", ts.URL, "nodes")
	require.NoError(t, err, out)
	require.Contains(t, out, "node-b")
	require.Contains(t, out, "gone")

	out, err = jobctl(t, noConfig, "--server", ts.URL, "show", strconv.FormatInt(runID, 10))
	require.NoError(t, err, out)
	require.Contains(t, out, "k1")
	require.Contains(t, out, "cancel: requested by alice@console at ")
	require.Contains(t, out, fmt.Sprintf("retried as: run %d (scheduled), requested by bob@jobctl at ", retryID))
	out, err = jobctl(t, noConfig, "--server", ts.URL, "show", strconv.FormatInt(retryID, 10))
	require.NoError(t, err, out)
	require.Contains(t, out, fmt.Sprintf("retry of: run %d, requested by bob@jobctl at ", runID))
	out, err = jobctl(t, noConfig, "--server", ts.URL, "--json", "show", strconv.FormatInt(runID, 10))
	require.NoError(t, err, out)
	var shown admin.RunDetail
	require.NoError(t, json.Unmarshal([]byte(out), &shown))
	require.NotNil(t, shown.Control)
	require.Equal(t, "alice@console", shown.Control.CancelRequestedBy)
	require.Equal(t, "bob@jobctl", shown.Control.Retries[0].RequestedBy)

	out, err = jobctl(t, noConfig, "--server", ts.URL, "runs", "--status", "failed")
	require.NoError(t, err, out)
	require.Contains(t, out, "pg_partition")

	out, err = jobctl(t, noConfig, "--server", ts.URL, "jobs", "--next", "2")
	require.NoError(t, err, out)
	require.Contains(t, out, "03:00:00 JST")

	out, err = jobctl(t, noConfig, "--server", ts.URL, "report", "--days", "3")
	require.NoError(t, err, out)
	require.Contains(t, out, now.UTC().Format(time.DateOnly))

	out, err = jobctl(t, noConfig, "--server", ts.URL, "pause", "pg_partition")
	require.NoError(t, err, out)
	paused, err := l.Paused(ctx)
	require.NoError(t, err)
	require.True(t, paused["pg_partition"])

	_, err = jobctl(t, noConfig, "--server", ts.URL, "pause", "pg_partiton")
	require.ErrorContains(t, err, `unknown job "pg_partiton"`)
	require.Equal(t, exitUsage, exitCode(err))

	t.Setenv(tokenEnv, "wrong")
	_, err = jobctl(t, noConfig, "--server", ts.URL, "resume", "pg_partition")
	require.ErrorContains(t, err, "401")
	require.Equal(t, exitFailed, exitCode(err))

	_, err = jobctl(t, noConfig, "--server", ts.URL, "seed-demo")
	require.ErrorContains(t, err, "direct mode only")
	require.Equal(t, exitUsage, exitCode(err))
}

func TestUsageErrorsAndVersion(t *testing.T) {
	t.Parallel()
	_, err := jobctl(t, "unused.yaml", "show")
	require.Equal(t, exitUsage, exitCode(err), "missing argument")
	_, err = jobctl(t, "unused.yaml", "nodez")
	require.Equal(t, exitUsage, exitCode(err), "unknown command")
	_, err = jobctl(t, "unused.yaml", "runs", "--limit", "many")
	require.Equal(t, exitUsage, exitCode(err), "bad flag value")
	_, err = jobctl(t, "unused.yaml", "--server", "ftp://x", "nodes")
	require.Equal(t, exitUsage, exitCode(err))
	out, err := jobctl(t, "unused.yaml", "--version")
	require.NoError(t, err)
	require.Contains(t, out, app.Build().GoVersion)
	out, err = jobctl(t, "unused.yaml", "--help")
	require.NoError(t, err)
	require.Contains(t, out, "64  usage")
	out, err = jobctl(t, "unused.yaml", "__complete", "pause", "")
	require.NoError(t, err)
	require.Contains(t, out, "pg_partition")
	require.Contains(t, out, "ledger_retention")
}
