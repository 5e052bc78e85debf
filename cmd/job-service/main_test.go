package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
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
