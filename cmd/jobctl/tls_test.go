package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/admin"
	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/internal/testcert"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// TestServerOverHTTPSWithPrivateCA: jobctl --server https://… reaches a node serving TLS with
// a certificate made here, trusted through --ca-cert.
func TestServerOverHTTPSWithPrivateCA(t *testing.T) {
	s := testenv.NewSchema(t)
	ctx := context.Background()
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	l := ledger.New(s.Pool)
	dir := t.TempDir()
	cert := testcert.New(t, 7)
	certPath, keyPath := cert.Write(t, dir)
	srv := admin.New(config.AdminConfig{Listen: "127.0.0.1:0", Token: "tok-for-tests", ProtectReads: true,
		TLSCert: certPath, TLSKey: keyPath}.WithDefaults(),
		admin.Deps{Node: "node-a", Ledger: l, Cluster: l, Runs: l, StaleAfter: 30 * time.Second, Kinds: handlers.Kinds,
			Spec: func(string) job.Spec { return job.Spec{Schedule: "0 0 3 * * *"}.WithDefaults() }})
	require.NoError(t, srv.Start(ctx))
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	t.Setenv(tokenEnv, "tok-for-tests")
	noConfig := "/nonexistent/jobctl.yaml"

	_, err := jobctl(t, noConfig, "--server", srv.URL(), "jobs")
	require.Error(t, err, "an unknown CA is refused")
	out, err := jobctl(t, noConfig, "--server", srv.URL(), "--ca-cert", filepath.Join(dir, "cert.pem"), "jobs")
	require.NoError(t, err, out)
	require.Contains(t, out, "pg_partition")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not a certificate"), 0o600))
	_, err = jobctl(t, noConfig, "--server", srv.URL(), "--ca-cert", filepath.Join(dir, "junk.pem"), "jobs")
	require.ErrorContains(t, err, "--ca-cert")
}

// TestTokenNeverSentInClearToAnotherHost: with a token, plain http:// to a host that is not
// loopback is refused before any connection is made, unless --insecure says so; loopback and
// https are fine, and so is plain http without a token.
func TestTokenNeverSentInClearToAnotherHost(t *testing.T) {
	for _, c := range []struct {
		server, token string
		insecure      bool
		refused       bool
	}{
		{"http://jobs.chat.internal:8080", "tok", false, true},
		{"http://10.20.30.40:8080", "tok", false, true},
		{"http://jobs.chat.internal:8080", "tok", true, false},
		{"http://jobs.chat.internal:8080", "", false, false},
		{"https://jobs.chat.internal:8080", "tok", false, false},
		{"http://127.0.0.1:8080", "tok", false, false},
		{"http://localhost:8080", "tok", false, false},
		{"http://[::1]:8080", "tok", false, false},
	} {
		t.Run(c.server+"/"+c.token, func(t *testing.T) {
			t.Setenv(tokenEnv, c.token)
			_, err := newAPIClient(&globals{server: c.server, insecure: c.insecure})
			if !c.refused {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, "--insecure")
			var ee *exitError
			require.ErrorAs(t, err, &ee)
			require.Equal(t, exitUsage, ee.code)
		})
	}
}
