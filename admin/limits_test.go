package admin

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// startReal starts the server on a loopback port with its real http.Server, timeouts included.
func startReal(t *testing.T, cfg config.AdminConfig, fl *fakeLedger) *Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	srv := New(cfg, Deps{Node: "n1", Ledger: fl, Kinds: func() []string { return []string{"pg_partition"} },
		Spec: func(string) job.Spec { return job.Spec{}.WithDefaults() }})
	require.NoError(t, srv.Start(context.Background()))
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	return srv
}

// closedWithin reads from c until the server closes it; it fails if that takes longer than limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	require.NoError(t, c.SetReadDeadline(start.Add(limit)))
	_, err := io.Copy(io.Discard, c)
	took := time.Since(start)
	require.NoError(t, err, "the server did not close the connection within %s", limit)
	return took
}

// A client that trickles a request, or parks a keep-alive connection, is cut off by the
// server's read and idle timeouts.
func TestAdminServerTimeouts(t *testing.T) {
	t.Parallel()
	cfg := config.AdminConfig{ReadTimeout: 300 * time.Millisecond, WriteTimeout: time.Second, IdleTimeout: 400 * time.Millisecond}
	srv := startReal(t, cfg, &fakeLedger{paused: map[string]string{}})

	// Slow headers: one byte, then nothing.
	c, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n"))
	require.NoError(t, err)
	took := closedWithin(t, c, 5*time.Second)
	t.Logf("slow headers cut after %s (read_timeout 300ms)", took.Round(time.Millisecond))

	// Slow body: headers promise 1 MiB, the body never comes.
	c2, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer c2.Close()
	_, err = fmt.Fprintf(c2, "POST /api/jobs/pg_partition/pause HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n{")
	require.NoError(t, err)
	closedWithin(t, c2, 5*time.Second)

	// Idle keep-alive: one request answered, then the connection is closed when idle.
	c3, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer c3.Close()
	_, err = c3.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(c3), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	_, _ = io.Copy(io.Discard, res.Body)
	took = closedWithin(t, c3, 5*time.Second)
	t.Logf("idle connection closed after %s (idle_timeout 400ms)", took.Round(time.Millisecond))
}

func TestAdminConfigTimeoutDefaults(t *testing.T) {
	t.Parallel()
	d := config.AdminConfig{}.WithDefaults()
	require.Equal(t, 10*time.Second, d.ReadTimeout)
	require.Equal(t, 30*time.Second, d.WriteTimeout)
	require.Equal(t, time.Minute, d.IdleTimeout)
	require.NoError(t, d.Validate())
	d.IdleTimeout = time.Hour
	require.ErrorContains(t, d.Validate(), "idle_timeout")
}

// Whatever limit the query string asks, a console page renders at most maxPageRows runs; the
// API, which pages, may return up to 1000.
func TestConsolePageRowCap(t *testing.T) {
	t.Parallel()
	ts, fl, _ := newTestServer(t, config.AdminConfig{Token: testToken})
	now := time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC)
	fl.mu.Lock()
	var more []ledger.Run
	for i := int64(1000); i > 60; i-- {
		s := now.Add(-time.Duration(i) * time.Second)
		more = append(more, ledger.Run{ID: i, Job: "pg_partition", RunKey: fmt.Sprintf("manual:r%d", i), ShardTotal: 1,
			Trigger: "manual", Status: ledger.StatusSucceeded, Attempt: 1, ScheduledAt: s, CreatedAt: s})
	}
	fl.runs = append(more, fl.runs...)
	fl.mu.Unlock()
	for _, path := range []string{"/?limit=1000", "/jobs/pg_partition?limit=1000"} {
		code, body := do(t, "GET", ts.URL+path, "", "")
		require.Equal(t, http.StatusOK, code, path)
		rows := strings.Count(body, `<tr data-run=`) // one per row of the runs table
		require.LessOrEqual(t, rows, maxPageRows, path)
		require.Positive(t, rows, path)
		require.Contains(t, body, "before=", "a next-page link for the rest: %s", path)
	}
	code, body := do(t, "GET", ts.URL+"/api/runs?limit=1000", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Greater(t, strings.Count(body, `"run_key"`), maxPageRows, "the API is not capped at the console's page size")
}
