package admin_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
)

// chromiumPath finds the browser: $JOBSVC_CHROMIUM, else chromium on the PATH. `make test`
// installs it first (deploy/local/chromium.sh); a missing browser fails the test, it never skips.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, c := range []string{os.Getenv("JOBSVC_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: run deploy/local/chromium.sh (make test does) or set JOBSVC_CHROMIUM")
	return ""
}

// browser starts headless Chromium for one test.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // tests run as root in CI containers, where the sandbox cannot start
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, 5*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	path := filepath.Join(screenshotDir(t), name)
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}

// text waits for sel to be visible and returns its text.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel))), sel)
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(t, err, sel)
	return s
}

// textContains waits until the element sel shows want: a form's answer arrives after the
// click returns, and the element may still show the previous answer.
func textContains(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() bool {
		return strings.Contains(text(t, ctx, sel), want)
	}, "%s to show %q", sel, want)
}

func click(sel string) chromedp.Action[chromedp.Void] { return chromedp.Click(chromedp.CSS(sel)) }

// TestConsoleInChromium drives the console in headless Chromium against a real node: the jobs
// table, Run now refused without a token and accepted with it, the forced run followed to
// success, its run page with result JSON and attempts, and a screenshot of each page.
func TestConsoleInChromium(t *testing.T) {
	testenv.Integration(t)
	s := startStack(t)
	ctx := browser(t)

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(s.url)))
	jobsText := text(t, ctx, `#jobs tr[data-job="pg_partition"]`)
	require.Contains(t, jobsText, "pg_partition")
	require.Contains(t, jobsText, "@daily")

	// Without a token the API refuses, and the page says so.
	_, err := chromedp.Run(ctx, chromedp.Evaluate[any](`localStorage.removeItem('jobservice.token')`))
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx, click(`button[data-action="run"][data-job="pg_partition"]`)))
	require.Contains(t, text(t, ctx, `#flash.bad`), "refused (401)")

	// With the token saved, Run now publishes and the page links to the run.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`#token`), token),
		click(`#token-form button`),
		click(`button[data-action="run"][data-job="pg_partition"]`),
	))
	runKey := text(t, ctx, `#forced-run`)
	require.True(t, strings.HasPrefix(runKey, "manual:"), runKey)
	s.waitRun(t, runKey) // the ledger, through the API; then the page must show the same

	require.NoError(t, chromedp.Do(ctx, click(`#forced-run`), chromedp.WaitVisible(chromedp.CSS(`#runs tr[data-run]`))))
	status, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`#runs tr[data-run]`), "data-status"))
	require.NoError(t, err)
	require.Equal(t, "succeeded", status.Value)
	require.Contains(t, text(t, ctx, `#runs tr[data-run]`), runKey)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(s.url), chromedp.WaitVisible(chromedp.CSS(`.chart circle`))))
	screenshot(t, ctx, "console.png")

	require.NoError(t, chromedp.Do(ctx, click(`#runs tr[data-run] td a`)))
	require.Contains(t, text(t, ctx, `#result`), `"chat_messages"`)
	require.Contains(t, text(t, ctx, `#attempts`), "succeeded")
	screenshot(t, ctx, "run.png")

	// Pause from the page reaches the ledger.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(s.url),
		click(`button[data-action="pause"][data-job="pg_partition"]`)))
	require.Contains(t, text(t, ctx, `#flash.ok`), "paused")
	paused, err := s.node.Ledger.Paused(t.Context())
	require.NoError(t, err)
	require.True(t, paused["pg_partition"])
}
