package admin

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/internal/testcert"
	"github.com/chatplat/job-service/internal/testenv"
)

// TestConsoleTokenCookieSecureInChromium saves the token in the console of a node serving
// HTTPS (a certificate made here) and of one serving HTTP, in headless Chromium, and reads the
// cookie the browser stored: Secure under TLS only.
func TestConsoleTokenCookieSecureInChromium(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := testcert.New(t, 42).Write(t, dir)
	tlsSrv := New(config.AdminConfig{Listen: "127.0.0.1:0", Token: testToken, TLSCert: certPath, TLSKey: keyPath}.WithDefaults(),
		Deps{Node: "n1", Ledger: &fakeLedger{}, Kinds: func() []string { return nil }})
	require.NoError(t, tlsSrv.Start(context.Background()))
	t.Cleanup(func() { _ = tlsSrv.Stop(context.Background()) })
	plainSrv := New(config.AdminConfig{Listen: "127.0.0.1:0", Token: testToken}.WithDefaults(),
		Deps{Node: "n1", Ledger: &fakeLedger{}, Kinds: func() []string { return nil }})
	require.NoError(t, plainSrv.Start(context.Background()))
	t.Cleanup(func() { _ = plainSrv.Stop(context.Background()) })

	for _, c := range []struct {
		url    string
		secure bool
	}{{tlsSrv.URL(), true}, {plainSrv.URL(), false}} {
		ctx := tlsBrowser(t)
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(c.url),
			chromedp.SetValue(chromedp.CSS(`#token`), testToken), chromedp.Click(chromedp.CSS(`#token-form button`))))
		var got *network.Cookie
		testenv.Eventually(t, 10*time.Second, func() bool {
			res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{c.url}})
			require.NoError(t, err)
			for _, ck := range res.Cookies {
				if ck.Name == "jobservice_admin_token" {
					got = ck
				}
			}
			return got != nil
		}, "the token cookie at %s", c.url)
		require.Equal(t, c.secure, got.Secure, c.url)
		require.Equal(t, network.CookieSameSiteStrict, got.SameSite)
	}
}

// tlsBrowser is headless Chromium that accepts the test's own certificate.
func tlsBrowser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, c := range []string{os.Getenv("JOBSVC_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(c); c != "" && err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Fatal("no Chromium found: run deploy/local/chromium.sh (make test does) or set JOBSVC_CHROMIUM")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()), chromedp.Flag("ignore-certificate-errors", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}
