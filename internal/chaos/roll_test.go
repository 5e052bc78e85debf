package chaos_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/internal/testenv"
)

// claimTrouble is what a node logs when the ledger refuses its claims or outcomes (the
// previous release against a schema it cannot use: "cannot update view job_attempts").
var claimTrouble = regexp.MustCompile(`claim failed|could not record outcome|level=ERROR`)

// A rolling upgrade: a node of the previous release (built from git: the commit before the
// newest migration) runs on a fresh ledger; a node of this release joins and migrates the
// schema while it runs; runs are forced all along; the old node restarts once (on the new
// schema), then drains and is replaced by a second node of this release. Every forced run runs exactly once, the old node claims
// and finishes runs on the new schema without a single claim error, and runs forced while
// both releases serve finish while they do (nothing waits for the roll to end).
func TestRollingUpgradeFromThePreviousRelease(t *testing.T) {
	testenv.Integration(t)
	repo := chaos.RepoRoot()
	from, err := chaos.PreviousRelease(repo)
	require.NoError(t, err)
	t.Logf("rolling from release %s", from)
	oldBin, err := chaos.BuildRelease(repo, from)
	require.NoError(t, err)

	ctx := context.Background()
	sch := testenv.NewSchema(t)
	_, err = sch.Pool.Exec(ctx, chaos.EffectsDDL)
	require.NoError(t, err)
	m := testenv.NewMQ(t, 8)
	s := chaos.Settings{DSN: sch.DSN, MQ: m.Config, LeaseKey: time.Now().UnixNano() & 0x7fffffff,
		Jobs: `chaos_probe: {max_attempts: 3, timeout: 1m, overlap: allow}`}
	// The ledger is left to the nodes: the old one migrates it as its release knew it.
	w := &world{t: t, pool: sch.Pool, mq: m.Config, c: chaos.NewCluster(t, bin, s)}
	oldDir := t.TempDir()
	startOld := func(name string) *chaos.Proc {
		p, err := chaos.StartRelease(oldBin, oldDir, name, s)
		require.NoError(t, err)
		t.Cleanup(func() {
			if p.Alive() {
				p.Kill()
			}
			if t.Failed() {
				lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
				t.Logf("---- output of node %s (previous release), last lines ----\n%s", name,
					strings.Join(lines[max(0, len(lines)-60):], "\n"))
			}
		})
		return p
	}

	a := startOld("old")
	w.ready(1)

	// Forced runs, one every 100 ms, until stopped.
	var mu sync.Mutex
	var keys []string
	published := map[string]time.Time{}
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			key := fmt.Sprintf("manual:roll-%s-%d", testenv.Suffix(), i)
			for _, e := range forced(chaos.ProbeKind, key, 1, `{"sleep_ms":50}`) {
				if _, err := w.producer().Publish(ctx, e, time.Time{}); err != nil {
					t.Errorf("publish %s: %v", key, err)
					return
				}
			}
			mu.Lock()
			keys, published[key] = append(keys, key), time.Now()
			mu.Unlock()
		}
	}()
	snapshot := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), keys...)
	}

	// This release joins (and migrates the schema under the running old node).
	joined := time.Now()
	w.c.Start("new-1", nil)
	// Both serve: runs keep running, on both nodes.
	var bothKeys []string
	testenv.Eventually(t, time.Minute, func() bool {
		bothKeys = forcedSince(snapshot(), published, &mu, joined.Add(2*time.Second))
		return len(bothKeys) >= 20 && ranOn(w, bothKeys, "old") > 0 && ranOn(w, bothKeys, "new-1") > 0
	}, "runs forced while both releases serve to run on both")
	both := snapshot()
	for _, k := range both {
		w.waitDone(chaos.ProbeKind, k, 1, 20*time.Second)
		mu.Lock()
		at := published[k]
		mu.Unlock()
		require.Less(t, finishedAt(w, k).Sub(at), 10*time.Second, "run %s waited while both releases served", k)
	}
	t.Logf("%d runs forced before the old node leaves: all done while it serves (the old node ran %d of the %d forced after the new one joined)",
		len(both), ranOn(w, bothKeys, "old"), len(bothKeys))

	// A node of the previous release restarts during the roll (a pod moved): it starts on the
	// schema this release migrated, and serves.
	require.NoError(t, a.Signal(syscall.SIGTERM))
	_, err = a.Wait(30 * time.Second)
	require.NoError(t, err)
	restarted := time.Now()
	a2 := startOld("old-2")
	testenv.Eventually(t, time.Minute, func() bool {
		return ranOn(w, forcedSince(snapshot(), published, &mu, restarted), "old-2") > 0
	}, "the restarted node of the previous release to run forced runs")

	// The roll goes on: the old node drains and a second node of this release replaces it.
	require.NoError(t, a2.Signal(syscall.SIGTERM))
	_, err = a2.Wait(30 * time.Second)
	require.NoError(t, err)
	w.c.Start("new-2", nil)
	n := len(snapshot())
	testenv.Eventually(t, time.Minute, func() bool { return len(snapshot()) >= n+10 }, "runs forced after the roll")
	close(stop)
	<-stopped

	all := snapshot()
	var lag time.Duration
	for _, k := range all {
		rs := w.waitDone(chaos.ProbeKind, k, 1, 30*time.Second)
		exactlyOnce(t, rs)
		finished := finishedAt(w, k)
		mu.Lock()
		lag = max(lag, finished.Sub(published[k]))
		mu.Unlock()
	}
	t.Logf("%d forced runs through the roll, each once; longest publish-to-finish %s", len(all), lag.Round(time.Millisecond))
	var trouble []string
	for _, line := range strings.Split(a.Log()+a2.Log(), "\n") {
		if claimTrouble.MatchString(line) {
			trouble = append(trouble, line)
		}
	}
	require.Empty(t, trouble, "the previous release's nodes logged claim errors on this release's schema")
}

// forcedSince returns the keys published after since.
func forcedSince(keys []string, published map[string]time.Time, mu *sync.Mutex, since time.Time) []string {
	mu.Lock()
	defer mu.Unlock()
	var out []string
	for _, k := range keys {
		if published[k].After(since) {
			out = append(out, k)
		}
	}
	return out
}

// ranOn counts the runs of keys that succeeded on node.
func ranOn(w *world, keys []string, node string) int {
	var n int
	require.NoError(w.t, w.pool.QueryRow(context.Background(), `SELECT count(*) FROM job_runs
		WHERE job = $1 AND run_key = ANY($2) AND status = 'succeeded' AND node = $3`, chaos.ProbeKind, keys, node).Scan(&n))
	return n
}

// finishedAt is when the run of key finished.
func finishedAt(w *world, key string) time.Time {
	var at time.Time
	require.NoError(w.t, w.pool.QueryRow(context.Background(), `SELECT finished_at FROM job_runs WHERE job = $1 AND run_key = $2`,
		chaos.ProbeKind, key).Scan(&at))
	return at
}
