package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func execute(args ...string) (string, error) {
	var out bytes.Buffer
	cmd := rootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestProbe(t *testing.T) {
	t.Parallel()
	code := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"postgres":"down"}`))
	}))
	defer srv.Close()
	_, err := execute("probe", srv.URL+"/readyz")
	require.NoError(t, err)
	code = http.StatusServiceUnavailable
	_, err = execute("probe", srv.URL+"/readyz")
	require.ErrorContains(t, err, "503")
	require.ErrorContains(t, err, "postgres")
	_, err = execute("probe", "http://127.0.0.1:1/healthz")
	require.Error(t, err)
}

func TestConfigCheck(t *testing.T) {
	t.Parallel()
	out, err := execute("config", "check", "--config", filepath.Join("..", "..", "configs", "local.yaml"))
	require.NoError(t, err)
	require.Contains(t, out, "ok")
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	_, err = execute("config", "check", "--config", missing)
	require.ErrorContains(t, err, missing)
}

// config check judges scheduled params by the job's own rules and lists every problem.
func TestConfigCheckListsEveryProblem(t *testing.T) {
	t.Parallel()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte(`postgres: {dsn: postgres://x@127.0.0.1/db}
log: {level: loud}
time_zone: Nowhere/Land
jobs: {file_gc: {params: {dryrun: true}}, nightly_magic: {schedule: '@daily'}}
handlers: {pg_partition: {premake: 100}}
`), 0o600))
	_, err := execute("config", "check", "--config", bad)
	require.Error(t, err)
	for _, want := range []string{"log.level", "config: time_zone", `jobs.file_gc.params: json: unknown field "dryrun"`,
		"handlers.pg_partition.premake"} {
		require.ErrorContains(t, err, want)
	}
	out, err := execute("config", "check", "--config", filepath.Join("..", "..", "configs", "production.example.yaml"))
	require.Error(t, err, "the production example needs its secrets from the environment")
	require.Empty(t, out)
}

func TestUnknownSubcommandFails(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"frob"}, {"config", "frob"}, {"config"}} {
		_, err := execute(args...)
		require.Error(t, err, "%v", args)
	}
}

// config check names each deprecated key it loads and what to write instead, and still
// passes; config reference prints the reference docs/configuration.md holds.
func TestConfigCheckWarnsAndReference(t *testing.T) {
	t.Parallel()
	old := filepath.Join(t.TempDir(), "old.yaml")
	require.NoError(t, os.WriteFile(old, []byte(`postgres: {dsn: postgres://x@127.0.0.1/db}
consumer: {heartbeat_interval: 5s, ledger_batch: 10}
`), 0o600))
	out, err := execute("config", "check", "--config", old)
	require.NoError(t, err)
	require.Contains(t, out, "warning: consumer.heartbeat_interval is deprecated: set consumer.stale_after")
	require.Contains(t, out, "warning: consumer.ledger_batch is deprecated: remove it")
	require.Contains(t, out, "ok")

	out, err = execute("config", "reference")
	require.NoError(t, err)
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "configuration.md"))
	require.NoError(t, err)
	require.Equal(t, string(doc), out)
}
