package chaos_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/internal/testenv"
)

// latestPublisher is the node that recorded the newest scheduled occurrence after t.
func (w *world) latestPublisher(after time.Time) string {
	var by string
	err := w.pool.QueryRow(context.Background(), `SELECT requested_by FROM job_runs WHERE trigger = 'schedule'
		AND created_at > $1 ORDER BY created_at DESC LIMIT 1`, after).Scan(&by)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(by, "ticker@")
}

// scheduledWindow returns the probe's scheduled rows in (from, to], checking that no second
// of the window is missing.
func (w *world) scheduledWindow(t *testing.T, from, to time.Time) []row {
	t.Helper()
	var window []row
	for _, r := range w.rows(chaos.ProbeKind, "") {
		at, err := time.Parse(time.RFC3339, strings.TrimPrefix(r.RunKey, "sched:chaos_probe@"))
		if err != nil {
			continue // a forced run
		}
		if at.After(from) && !at.After(to) {
			window = append(window, r)
		}
	}
	require.NotEmpty(t, window)
	first, err := time.Parse(time.RFC3339, strings.TrimPrefix(window[0].RunKey, "sched:chaos_probe@"))
	require.NoError(t, err)
	for i, r := range window {
		require.Equal(t, chaosKey(first.Add(time.Duration(i)*time.Second)), r.RunKey, "occurrence %d of the window is missing", i)
	}
	return window
}

// onceEach waits until every run of the window succeeded and checks: side effects within
// the at-least-once bound, and published at most once plus once per abandoned attempt
// (plus once for the runs in extra).
func (w *world) onceEach(t *testing.T, tp *tap, window []row, extra map[string]bool) {
	t.Helper()
	testenv.Eventually(t, 90*time.Second, func() bool {
		for _, r := range window {
			if got := w.rows(chaos.ProbeKind, r.RunKey); len(got) != 1 || got[0].Status != "succeeded" {
				return false
			}
		}
		return true
	}, "the window's runs to succeed")
	for _, r := range window {
		r = w.rows(chaos.ProbeKind, r.RunKey)[0]
		abandoned := 0
		for _, a := range r.Attempts {
			if a.Outcome == "abandoned" {
				abandoned++
			}
		}
		require.GreaterOrEqual(t, r.Effects, 1, "%v", r)
		require.LessOrEqual(t, r.Effects, 1+abandoned, "%v", r)
		testenv.Eventually(t, 30*time.Second, func() bool { return tp.count(r.RunKey) >= 1 }, "tap to see %s", r.RunKey)
		bound := 1 + abandoned
		if extra[r.RunKey] {
			bound++
		}
		require.LessOrEqual(t, tp.count(r.RunKey), bound, "messages published for %v", r)
	}
}

// A leader that stops answering (SIGSTOP keeps its TCP connections open:
// the kernel answers for it) loses the lease within lease_timeout (15 s), well inside 30 s;
// woken up, it steps down without publishing anything a second time.
func TestSIGSTOPLeaderLosesLeaseWithin30s(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "", nil, chaos.Settings{Ticker: true, Misfire: 40 * time.Second,
		Jobs: `chaos_probe: {schedule: "* * * * * *", max_attempts: 3, overlap: allow, misfire: fire_once}`})
	tp := w.tap()
	nodes := map[string]*chaos.Proc{}
	for _, n := range []string{"a", "b", "c"} {
		nodes[n] = w.c.Start(n, nil)
	}
	from := w.ready(3).Add(time.Second)
	var old string
	testenv.Eventually(t, 60*time.Second, func() bool { old = w.latestPublisher(from); return old != "" }, "a leader to publish")
	require.NoError(t, nodes[old].Signal(syscall.SIGSTOP))
	stopped := time.Now()
	var heir string
	testenv.Eventually(t, 60*time.Second, func() bool {
		heir = w.latestPublisher(stopped)
		return heir != "" && heir != old
	}, "another node to publish after the stop")
	took := time.Since(stopped)
	t.Logf("leader %s stopped; %s published %s later", old, heir, took.Round(time.Millisecond))
	require.Less(t, took, 30*time.Second, "a frozen leader's lease must end within 30 s")

	require.NoError(t, nodes[old].Signal(syscall.SIGCONT))
	woke := time.Now()
	require.NoError(t, nodes[old].WaitLog("ticker leadership lost", 30*time.Second))
	windowEnd := time.Now().Add(3 * time.Second)
	testenv.Eventually(t, 30*time.Second, func() bool { return time.Now().After(windowEnd.Add(5 * time.Second)) }, "")
	var byOld int
	require.NoError(t, w.pool.QueryRow(context.Background(), `SELECT count(*) FROM job_runs WHERE requested_by = $1
		AND created_at > $2`, "ticker@"+old, woke).Scan(&byOld))
	require.Zero(t, byOld, "the old leader recorded nothing after it woke up")
	window := w.scheduledWindow(t, from, windowEnd)
	// The one publish the leader may have had on the wire when it froze, before it could
	// mark the row published, is published again by the heir's repair pass (at least once;
	// the claim runs it once). Only an occurrence within lookahead of the stop can be it.
	inFlight := map[string]bool{}
	for _, r := range window {
		at, _ := time.Parse(time.RFC3339, strings.TrimPrefix(r.RunKey, "sched:chaos_probe@"))
		if at.After(stopped.Add(-2*time.Second)) && !at.After(stopped.Add(w.c.Settings.Lookahead+2*time.Second)) && tp.count(r.RunKey) > 1 {
			inFlight[r.RunKey] = true
		}
	}
	require.LessOrEqual(t, len(inFlight), 1, "at most the one publish in flight at the freeze is repeated: %v", inFlight)
	w.onceEach(t, tp, window, inFlight)
	// Nothing the old leader's producer sent after it woke up.
	tp.mu.Lock()
	oldHosts := map[string]bool{}
	for _, m := range tp.born {
		if m.born.Before(stopped) && strings.HasPrefix(m.runKey, "sched:") {
			oldHosts[m.bornHost] = true // only the old leader published occurrences before the stop
		}
	}
	// Except the send the freeze caught between the lease check and the wire: recorded before
	// the stop, it leaves when the process runs again (no fence can stop a paused process's
	// next write; the ledger runs it once). At most one occurrence, and the same one as any
	// repeated above.
	late := map[string]string{}
	for id, m := range tp.born {
		if oldHosts[m.bornHost] && !m.born.Before(woke) {
			late[m.runKey] = id
		}
	}
	tp.mu.Unlock()
	for key, id := range late {
		var created time.Time
		require.NoError(t, w.pool.QueryRow(context.Background(), `SELECT created_at FROM job_runs WHERE job = $1 AND run_key = $2`,
			chaos.ProbeKind, key).Scan(&created))
		at, _ := time.Parse(time.RFC3339, strings.TrimPrefix(key, "sched:chaos_probe@"))
		caught := created.Before(stopped) && !at.After(stopped.Add(w.c.Settings.Lookahead+2*time.Second)) &&
			len(late) == 1 && (len(inFlight) == 0 || inFlight[key])
		if !caught {
			t.Errorf("the old leader published %s (message %s, recorded %s, stopped %s) after it woke up", key, id,
				created.Format(time.RFC3339Nano), stopped.Format(time.RFC3339Nano))
			continue
		}
		t.Logf("the send in flight at the freeze left after the wake-up: %s (message %s, recorded before the stop)", key, id)
	}
	t.Logf("%d occurrences from before the stop to after the wake-up, each recorded and run once; repeated publish of the one in flight at the freeze: %v",
		len(window), inFlight)
}

// A node cut off from Postgres stops its own run (the handler's context is
// cancelled) before stale_after lets another node take it over. The cut is healed before the
// handler's work would have ended: a handler that kept going would then write its side
// effect a second time.
func TestNodeCutFromLedgerStopsItsRunBeforeTakeover(t *testing.T) {
	t.Parallel()
	const stale = 3 * time.Second
	w := newWorld(t, "", nil, chaos.Settings{Heartbeat: 500 * time.Millisecond, StaleAfter: stale,
		Jobs: `chaos_probe: {max_attempts: 3, timeout: 1m, overlap: allow}`})
	u, err := url.Parse(w.c.Settings.DSN)
	require.NoError(t, err)
	proxy, err := chaos.NewProxy(u.Host)
	require.NoError(t, err)
	t.Cleanup(proxy.Close)
	u.Host = proxy.Addr()
	a := w.c.Start("a", func(s *chaos.Settings) { s.DSN = u.String() })
	w.ready(1)
	key := "manual:cut-" + testenv.Suffix()
	w.publish(forced(chaos.ProbeKind, key, 1, `{"sleep_ms":15000}`)...)
	testenv.Eventually(t, 60*time.Second, func() bool {
		rs := w.rows(chaos.ProbeKind, key)
		return len(rs) == 1 && rs[0].Status == "running"
	}, "the run to start on a")
	// b leads the ticker (its repair pass takes the run over) and consumes.
	w.c.Start("b", func(s *chaos.Settings) { s.Ticker = true })

	proxy.Cut()
	cut := time.Now()
	require.NoError(t, a.WaitLog("ledger unreachable; stopping run", 2*stale))
	stoppedAfter := time.Since(cut)
	var takeover time.Time
	testenv.Eventually(t, 60*time.Second, func() bool {
		err := w.pool.QueryRow(context.Background(), `SELECT a.started_at FROM job_attempts a JOIN job_runs r ON r.id = a.run_id
			WHERE r.run_key = $1 AND a.attempt = 2`, key).Scan(&takeover)
		return err == nil || time.Since(cut) > 10*time.Second
	}, "a takeover")
	// Heal well before the first attempt's 15 s of work would end.
	proxy.Heal()
	rs := w.waitDone(chaos.ProbeKind, key, 1, 2*time.Minute)
	if takeover.IsZero() {
		require.NoError(t, w.pool.QueryRow(context.Background(), `SELECT a.started_at FROM job_attempts a JOIN job_runs r
			ON r.id = a.run_id WHERE r.run_key = $1 AND a.attempt = 2`, key).Scan(&takeover))
	}
	t.Logf("a cut from Postgres; its handler stopped %s later; attempt 2 began %s after the cut; %v",
		stoppedAfter.Round(time.Millisecond), takeover.Sub(cut).Round(time.Millisecond), rs[0])
	require.Less(t, stoppedAfter, stale, "stopped within stale_after of the cut")
	require.True(t, cut.Add(stoppedAfter).Before(takeover), "handler stopped before the takeover")
	exactlyOnce(t, rs)
	require.Equal(t, "a", rs[0].Attempts[0].Node)
	// Let the first attempt's 15 s pass: its handler, had it kept going, would write now.
	testenv.Eventually(t, 30*time.Second, func() bool { return time.Since(cut) > 16*time.Second }, "")
	exactlyOnce(t, w.rows(chaos.ProbeKind, key))
}

var adminAddr = regexp.MustCompile(`admin server listening"? addr=(\S+)`)

// After SIGTERM no handler starts; /readyz answers 503 while /metrics
// still answers, until the drain ends.
func TestSIGTERMStartsNothingAndKeepsMetricsUp(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "", nil, chaos.Settings{Ticker: true, Drain: 8 * time.Second, MaxRunning: 1, Goroutines: 8,
		Jobs: `chaos_probe: {max_attempts: 3, timeout: 1m, overlap: allow}`})
	a := w.c.Start("a", nil)
	w.ready(1)
	require.NoError(t, a.WaitLog("admin server listening", 10*time.Second))
	m := adminAddr.FindStringSubmatch(a.Log())
	require.NotNil(t, m, "admin address in the log")
	base := "http://" + m[1]
	long := "manual:long-" + testenv.Suffix()
	w.publish(forced(chaos.ProbeKind, long, 1, `{"sleep_ms":3000}`)...)
	testenv.Eventually(t, 60*time.Second, func() bool {
		rs := w.rows(chaos.ProbeKind, long)
		return len(rs) == 1 && rs[0].Status == "running"
	}, "the long run to start")
	var waiting []string
	for i := 0; i < 4; i++ {
		k := fmt.Sprintf("manual:waiting-%d-%s", i, testenv.Suffix())
		waiting = append(waiting, k)
		w.publish(forced(chaos.ProbeKind, k, 1, `{}`)...)
	}
	testenv.Eventually(t, 30*time.Second, func() bool {
		for _, k := range waiting {
			if rs := w.rows(chaos.ProbeKind, k); len(rs) != 1 || rs[0].Status != "running" {
				return false
			}
		}
		return true
	}, "the short runs to be claimed, waiting for the only slot")
	get := func(path string) int {
		c := http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get(base + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, 200, get("/readyz"))
	require.NoError(t, a.Signal(syscall.SIGTERM))
	sent := time.Now()
	var ready, metrics int
	testenv.Eventually(t, 5*time.Second, func() bool { ready, metrics = get("/readyz"), get("/metrics"); return ready == 503 }, "readyz 503 while draining")
	require.Equal(t, 200, metrics, "/metrics stays up during the drain")
	code, err := a.Wait(30 * time.Second)
	require.NoError(t, err)
	require.Equal(t, 0, code)
	t.Logf("SIGTERM to exit %s; readyz 503 and metrics 200 during the drain", time.Since(sent).Round(time.Millisecond))
	exactlyOnce(t, w.rows(chaos.ProbeKind, long))
	for _, k := range waiting {
		rs := w.rows(chaos.ProbeKind, k)
		require.Len(t, rs, 1)
		require.Equal(t, "interrupted", rs[0].Status, "%v", rs[0])
		require.Zero(t, rs[0].Effects, "no handler started after SIGTERM: %v", rs[0])
	}
	w.noneRunning(time.Now())
}

// A node whose clock reads 5 minutes ahead takes the lease over from a
// node with a true clock: it decides misfires on the database's time, so it neither skips
// the occurrences due now (as missed) nor publishes 5 minutes ahead; a consumer whose clock
// is 5 minutes behind does not send every message back as early; every occurrence runs once.
func TestSkewedClockNeitherLosesNorLoops(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "", nil, chaos.Settings{Ticker: true,
		Jobs: `chaos_probe: {schedule: "* * * * * *", max_attempts: 3, overlap: allow, misfire: skip}`})
	tp := w.tap()
	a := w.c.Start("a", nil)
	from := w.ready(1).Add(time.Second)
	testenv.Eventually(t, 60*time.Second, func() bool { return w.latestPublisher(from) == "a" }, "a to publish")
	b := w.c.Start("b", func(s *chaos.Settings) { s.Env = []string{"JOBSVC_TEST_CLOCK_SKEW=5m"} })
	require.NoError(t, b.WaitLog("clock differs from the database's", 10*time.Second))
	// c only consumes, with a clock 5 minutes behind: on its own clock every message would
	// arrive 5 minutes early and go back to the broker as a timer message, again and again.
	c := w.c.Start("c", func(s *chaos.Settings) { s.Ticker, s.Env = false, []string{"JOBSVC_TEST_CLOCK_SKEW=-5m"} })
	require.NoError(t, c.WaitLog("clock differs from the database's", 10*time.Second))
	a.Kill()
	killed := time.Now()
	testenv.Eventually(t, 60*time.Second, func() bool { return w.latestPublisher(killed) == "b" }, "b to publish")
	tookOver := time.Since(killed)
	windowEnd := time.Now().Add(5 * time.Second)
	testenv.Eventually(t, 30*time.Second, func() bool { return time.Now().After(windowEnd.Add(4 * time.Second)) }, "")
	var skipped, ahead int
	require.NoError(t, w.pool.QueryRow(context.Background(), `SELECT count(*) FILTER (WHERE status = 'skipped'),
		count(*) FILTER (WHERE scheduled_at > created_at + interval '1 minute') FROM job_runs`).Scan(&skipped, &ahead))
	require.Zero(t, skipped, "no occurrence skipped as missed")
	require.Zero(t, ahead, "no occurrence recorded minutes ahead")
	window := w.scheduledWindow(t, from, windowEnd)
	w.onceEach(t, tp, window, nil)
	require.NotContains(t, c.Log(), "re-published as timer message", "c (clock -5m) sent nothing back as early")
	var ranOnC int
	for _, r := range window {
		if w.rows(chaos.ProbeKind, r.RunKey)[0].Node == "c" {
			ranOnC++
		}
	}
	t.Logf("b (clock +5m) published %s after a was killed; %d occurrences, none skipped, each run and published once; %d ran on c (clock -5m)",
		tookOver.Round(time.Millisecond), len(window), ranOnC)
}

// Under skip_if_running, a fresh occurrence meeting a running run is
// skipped, but a run that already had an attempt (here: interrupted by a drain, its message
// redelivered) is deferred until the running one ends, then runs: never acknowledged into
// a state nothing picks up again.
func TestSkipIfRunningDefersARunThatAlreadyStarted(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "", nil, chaos.Settings{Ticker: true,
		Jobs: `chaos_probe: {max_attempts: 3, timeout: 1m, overlap: skip_if_running}`})
	w.c.Start("a", nil)
	w.ready(1)
	ctx := context.Background()
	long := "manual:long-" + testenv.Suffix()
	w.publish(forced(chaos.ProbeKind, long, 1, `{"sleep_ms":5000}`)...)
	testenv.Eventually(t, 60*time.Second, func() bool {
		rs := w.rows(chaos.ProbeKind, long)
		return len(rs) == 1 && rs[0].Status == "running"
	}, "the long run to start")

	// A run a drain interrupted, as the ledger has it, and its redelivered message.
	again := forced(chaos.ProbeKind, "manual:interrupted-"+testenv.Suffix(), 1, `{}`)
	var id int64
	require.NoError(t, w.pool.QueryRow(ctx, `INSERT INTO job_runs (job, run_key, trigger, scheduled_at, params, status,
		attempt, node, started_at) VALUES ($1, $2, 'manual', $3, '{}', 'interrupted', 1, 'drained', now()) RETURNING id`,
		chaos.ProbeKind, again[0].RunKey, again[0].ScheduledAt).Scan(&id))
	fresh := forced(chaos.ProbeKind, "manual:fresh-"+testenv.Suffix(), 1, `{}`)
	w.publish(again...)
	w.publish(fresh...)

	rs := w.waitDone(chaos.ProbeKind, fresh[0].RunKey, 1, time.Minute)
	require.Equal(t, "skipped", rs[0].Status, "a fresh run meeting a running one is skipped")
	require.Zero(t, rs[0].Effects)
	require.Equal(t, "running", w.rows(chaos.ProbeKind, long)[0].Status, "checked while the long run still ran")
	rs = w.waitDone(chaos.ProbeKind, again[0].RunKey, 1, 90*time.Second)
	exactlyOnce(t, rs)
	require.Equal(t, 2, rs[0].Attempt, "the interrupted attempt, then this one")
	var ended, ran time.Time
	require.NoError(t, w.pool.QueryRow(ctx, `SELECT finished_at FROM job_runs WHERE run_key = $1`, long).Scan(&ended))
	require.NoError(t, w.pool.QueryRow(ctx, `SELECT started_at FROM job_runs WHERE id = $1`, id).Scan(&ran))
	require.True(t, ran.After(ended), "the deferred run ran after the long one ended")
	exactlyOnce(t, w.rows(chaos.ProbeKind, long))
	t.Logf("interrupted run deferred behind the running one and run %s after it ended", ran.Sub(ended).Round(time.Millisecond))
	w.noneRunning(time.Now())
}
