package admin

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/internal/testcert"
	"github.com/chatplat/job-service/internal/testenv"
)

// TestServesHTTPSAndReloadsCertificate: with admin.tls_cert/tls_key the node serves HTTPS
// only, the console marks the token cookie Secure, and a certificate replaced on disk (a
// rotated Secret) is served from the next handshake on, without a restart.
func TestServesHTTPSAndReloadsCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, second := testcert.New(t, 1001), testcert.New(t, 1002)
	certPath, keyPath := first.Write(t, dir)
	srv := New(config.AdminConfig{Listen: "127.0.0.1:0", Token: testToken, TLSCert: certPath, TLSKey: keyPath}.WithDefaults(),
		Deps{Node: "n1", Ledger: &fakeLedger{}, Kinds: func() []string { return nil }})
	require.NoError(t, srv.Start(context.Background()))
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	require.True(t, strings.HasPrefix(srv.URL(), "https://"), srv.URL())

	get := func(pool testcert.Cert, path string) (*http.Response, string, error) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool.Pool, MinVersion: tls.VersionTLS12}, DisableKeepAlives: true}}
		res, err := c.Get("https://" + srv.Addr() + path)
		if err != nil {
			return nil, "", err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b), nil
	}
	res, body, err := get(first, "/healthz")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, body)
	require.Equal(t, first.Serial, res.TLS.PeerCertificates[0].SerialNumber)

	// Plain HTTP to the TLS port gets no answer from the API.
	plain, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + srv.Addr() + "/healthz")
	if err == nil {
		plain.Body.Close()
		require.Equal(t, http.StatusBadRequest, plain.StatusCode)
	}

	// The console's token cookie is Secure under TLS.
	res, body, err = get(first, "/")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Regexp(t, `const secureCookie = \s*true\s*\|\|`, body)

	// Rotate the certificate on disk: the next connections get the new one.
	second.Write(t, dir)
	testenv.Eventually(t, 10*time.Second, func() bool {
		res, _, err := get(second, "/healthz")
		return err == nil && res.TLS.PeerCertificates[0].SerialNumber.Cmp(second.Serial) == 0
	}, "the rotated certificate is served")
}

// TestConsoleCookieNotSecureOverHTTP: over plain HTTP the console cannot mark its cookie
// Secure (the browser would drop it), unless the page itself came over https (a proxy).
func TestConsoleCookieNotSecureOverHTTP(t *testing.T) {
	t.Parallel()
	ts, _, _ := newTestServer(t, config.AdminConfig{Token: testToken})
	code, body := do(t, "GET", ts.URL+"/", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Regexp(t, `const secureCookie = \s*false\s*\|\| location.protocol === 'https:'`, body)
}

func TestTLSConfigNeedsBothFiles(t *testing.T) {
	t.Parallel()
	for _, c := range []config.AdminConfig{{TLSCert: "/x/cert.pem"}, {TLSKey: "/x/key.pem"}} {
		err := c.WithDefaults().Validate()
		require.ErrorContains(t, err, "tls_cert and tls_key")
	}
	require.NoError(t, config.AdminConfig{TLSCert: "/x/cert.pem", TLSKey: "/x/key.pem"}.WithDefaults().Validate())
}

// TestStartRefusesBadCertificate: a node told to serve TLS with files it cannot load does not
// fall back to plain HTTP; it refuses to start, naming the key.
func TestStartRefusesBadCertificate(t *testing.T) {
	t.Parallel()
	srv := New(config.AdminConfig{Listen: "127.0.0.1:0", TLSCert: "/nonexistent/cert.pem", TLSKey: "/nonexistent/key.pem"}.WithDefaults(),
		Deps{Node: "n1", Ledger: &fakeLedger{}})
	err := srv.Start(context.Background())
	require.ErrorContains(t, err, "admin.tls_cert")
}
