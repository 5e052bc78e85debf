package chaos_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/mq"
)

// kill -9 of the node running a long run: another node finishes it; the killed attempt stays
// visible as abandoned, never as a second success.
func TestKill9ConsumerMidRunIsRedoneElsewhere(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "", nil, chaos.Settings{Ticker: true,
		Jobs: `chaos_probe: {max_attempts: 3, timeout: 1m, overlap: allow}`})
	nodes := map[string]*chaos.Proc{"a": w.c.Start("a", nil), "b": w.c.Start("b", nil)}
	w.ready(2)
	key := "manual:kill9-" + testenv.Suffix()
	w.publish(forced(chaos.ProbeKind, key, 1, `{"sleep_ms":6000}`)...)

	var holder string
	testenv.Eventually(t, 60*time.Second, func() bool {
		rs := w.rows(chaos.ProbeKind, key)
		if len(rs) == 1 && rs[0].Status == "running" {
			holder = rs[0].Node
		}
		return holder != ""
	}, "the run to start")
	killed := time.Now()
	nodes[holder].Kill()
	rs := w.waitDone(chaos.ProbeKind, key, 1, 90*time.Second)
	t.Logf("killed %s mid-run; run finished %s later: %v", holder, time.Since(killed).Round(time.Millisecond), rs[0])

	// The side effect comes after the sleep, and the kill came during it: exactly once.
	exactlyOnce(t, rs)
	r := rs[0]
	require.NotEqual(t, holder, r.Node, "the survivor finished it")
	require.GreaterOrEqual(t, len(r.Attempts), 2)
	require.Equal(t, attempt{1, holder, "abandoned"}, r.Attempts[0], "the killed attempt")
	require.Equal(t, "succeeded", r.Attempts[len(r.Attempts)-1].Outcome)
	w.noneRunning(time.Now())
}

// kill -9 of the ticker leader: another node takes the lease and goes on; every occurrence of
// the window is in the ledger once, succeeded once, and was published once.
func TestKill9LeaderTickerMissesNothingAndDoublesNothing(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "", nil, chaos.Settings{Ticker: true,
		Jobs: `chaos_probe: {schedule: "* * * * * *", max_attempts: 3, overlap: allow, misfire: fire_once}`})
	tp := w.tap()
	nodes := map[string]*chaos.Proc{}
	for _, n := range []string{"a", "b", "c"} {
		nodes[n] = w.c.Start(n, nil)
	}
	// Occurrences delivered before every queue had its start offset may be missed by the
	// fresh group (see ready); the window starts after that.
	from := w.ready(3).Add(time.Second)
	ctx := context.Background()
	leader := func(after time.Time) string {
		var by string
		err := w.pool.QueryRow(ctx, `SELECT requested_by FROM job_runs WHERE trigger = 'schedule' AND scheduled_at > $1
			ORDER BY scheduled_at DESC LIMIT 1`, after).Scan(&by)
		if err != nil {
			return ""
		}
		return strings.TrimPrefix(by, "ticker@")
	}
	testenv.Eventually(t, 60*time.Second, func() bool {
		var n int
		require.NoError(t, w.pool.QueryRow(ctx, `SELECT count(*) FROM job_runs WHERE status = 'succeeded'`).Scan(&n))
		return n >= 3
	}, "three scheduled runs to succeed")
	old := leader(time.Time{})
	require.Contains(t, nodes, old)
	killedAt := time.Now()
	nodes[old].Kill()
	var heir string
	testenv.Eventually(t, 30*time.Second, func() bool {
		heir = leader(killedAt.Add(5 * time.Second))
		return heir != ""
	}, "another node to publish after the kill")
	require.NotEqual(t, old, heir)
	windowEnd := killedAt.Add(8 * time.Second)
	testenv.Eventually(t, 30*time.Second, func() bool { return time.Now().After(windowEnd.Add(3 * time.Second)) }, "")

	rs := w.rows(chaos.ProbeKind, "")
	var window []row
	for _, r := range rs {
		at, err := time.Parse(time.RFC3339, strings.TrimPrefix(r.RunKey, "sched:chaos_probe@"))
		require.NoError(t, err, r.RunKey)
		if at.After(from) && !at.After(windowEnd) {
			window = append(window, r)
		}
	}
	first, err := time.Parse(time.RFC3339, strings.TrimPrefix(window[0].RunKey, "sched:chaos_probe@"))
	require.NoError(t, err)
	for i, r := range window {
		want := chaosKey(first.Add(time.Duration(i) * time.Second))
		require.Equal(t, want, r.RunKey, "occurrence %d of the window is missing or out of order", i)
	}
	testenv.Eventually(t, 60*time.Second, func() bool {
		for _, r := range window {
			if got := w.rows(chaos.ProbeKind, r.RunKey); len(got) != 1 || got[0].Status != "succeeded" {
				return false
			}
		}
		return true
	}, "the window's runs to succeed")
	for i := range window {
		window[i] = w.rows(chaos.ProbeKind, window[i].RunKey)[0]
	}
	for _, r := range window {
		// The probe sleeps 0 ms: a kill between its side effect and Finish is possible but
		// rare. Such a run has an abandoned attempt and may show two effects; bound it.
		abandoned := 0
		for _, a := range r.Attempts {
			if a.Outcome == "abandoned" {
				abandoned++
			}
		}
		require.Equal(t, "succeeded", r.Status, "%v", r)
		require.GreaterOrEqual(t, r.Effects, 1, "%v", r)
		require.LessOrEqual(t, r.Effects, 1+abandoned, "%v", r)
		// Published once by a ticker; a run abandoned by the killed node is republished once
		// by the repair pass.
		testenv.Eventually(t, 20*time.Second, func() bool { return tp.count(r.RunKey) >= 1 }, "tap to see %s", r.RunKey)
		require.LessOrEqual(t, tp.count(r.RunKey), 1+abandoned, "messages published for %v", r)
	}
	w.noneRunning(windowEnd)
	t.Logf("killed leader %s; %s took over; %d occurrences in the window, each once", old, heir, len(window))
	for _, n := range nodes {
		if n.Name != old {
			n.Kill()
		}
	}
}

func chaosKey(at time.Time) string { return "sched:chaos_probe@" + at.UTC().Format(time.RFC3339) }

// SIGTERM: the node stops pulling, finishes what it can within drain_timeout, records the
// rest interrupted and exits 0; another node completes the interrupted run.
func TestSIGTERMDrainsAndExitsZero(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "", nil, chaos.Settings{Ticker: true, Drain: 4 * time.Second,
		Jobs: `chaos_probe: {max_attempts: 3, timeout: 1m, overlap: allow}`})
	a := w.c.Start("a", nil)
	w.ready(1)
	short, long := "manual:short-"+testenv.Suffix(), "manual:long-"+testenv.Suffix()
	w.publish(forced(chaos.ProbeKind, short, 1, `{"sleep_ms":1500}`)...)
	w.publish(forced(chaos.ProbeKind, long, 1, `{"sleep_ms":8000}`)...)
	testenv.Eventually(t, 60*time.Second, func() bool {
		s, l := w.rows(chaos.ProbeKind, short), w.rows(chaos.ProbeKind, long)
		return len(s) == 1 && len(l) == 1 && s[0].Status == "running" && l[0].Status == "running"
	}, "both runs to start")
	sent := time.Now()
	require.NoError(t, a.Signal(syscall.SIGTERM))
	code, err := a.Wait(4*time.Second + 10*time.Second)
	require.NoError(t, err)
	took := time.Since(sent)
	require.Equal(t, 0, code, "exit code after SIGTERM")
	require.Less(t, took, 4*time.Second+5*time.Second, "drain bounded by drain_timeout")
	t.Logf("SIGTERM to exit: %s (drain_timeout 4s)", took.Round(time.Millisecond))

	exactlyOnce(t, w.rows(chaos.ProbeKind, short))
	l := w.rows(chaos.ProbeKind, long)
	require.Equal(t, "interrupted", l[0].Status)
	require.Zero(t, l[0].Effects)
	w.noneRunning(time.Now())

	w.c.Start("b", nil) // b reads the group's committed offsets: the redelivery is not missed
	rs := w.waitDone(chaos.ProbeKind, long, 1, 90*time.Second)
	exactlyOnce(t, rs)
	require.Equal(t, attempt{1, "a", "interrupted"}, rs[0].Attempts[0])
	require.Equal(t, "b", rs[0].Node)
	w.noneRunning(time.Now())
}

// A node that stops answering without dying (SIGSTOP: its connections stay open) and a run
// left running by a node that never comes back (a row with an old heartbeat) are both
// detected by the stale heartbeat, marked abandoned and redone on a live node.
func TestStuckRunsAreDetectedAndRedone(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "", nil, chaos.Settings{Jobs: `chaos_probe: {max_attempts: 3, timeout: 1m, overlap: allow}`})
	// Only a leads the ticker: a frozen leader would hold its lease for lease_timeout (15 s).
	a := w.c.Start("a", func(s *chaos.Settings) { s.Ticker = true })
	b := w.c.Start("b", nil)
	_ = a
	ctx := context.Background()

	w.ready(2) // both nodes serve, so some shards land on b

	key := "manual:frozen-" + testenv.Suffix()
	w.publish(forced(chaos.ProbeKind, key, 8, `{"sleep_ms":5000}`)...)
	testenv.Eventually(t, 30*time.Second, func() bool {
		rs := w.rows(chaos.ProbeKind, key)
		running := 0
		for _, r := range rs {
			if r.Status == "running" {
				running++
			}
		}
		return running == 8
	}, "all shards to start")
	frozen := map[int]bool{}
	for _, r := range w.rows(chaos.ProbeKind, key) {
		if r.Node == "b" {
			frozen[r.Shard] = true
		}
	}
	require.NotEmpty(t, frozen, "b holds some shards")
	require.NoError(t, b.Signal(syscall.SIGSTOP))
	stopped := time.Now()
	rs := w.waitDone(chaos.ProbeKind, key, 8, 2*time.Minute)
	t.Logf("b frozen with %d shards; all redone %s later", len(frozen), time.Since(stopped).Round(time.Millisecond))
	for _, r := range rs {
		require.Equal(t, "succeeded", r.Status, "%v", r)
		if frozen[r.Shard] {
			require.Equal(t, attempt{1, "b", "abandoned"}, r.Attempts[0], "%v", r)
			require.Equal(t, "a", r.Node)
		}
	}

	// b wakes up: its handlers finish their sleep, the heartbeat finds the claims lost, and
	// Finish is refused (attempt fencing), so the ledger keeps a's success. A handler that was
	// past its sleep may still write its side effect once more: the ledger fences outcomes,
	// not the handler's own writes, so the bound is 2 for the frozen shards and 1 elsewhere.
	require.NoError(t, b.Signal(syscall.SIGCONT))
	require.NoError(t, b.WaitLog("outcome dropped", 30*time.Second))
	testenv.Eventually(t, 30*time.Second, func() bool {
		var n int
		require.NoError(t, w.pool.QueryRow(ctx, `SELECT count(*) FROM job_attempts WHERE outcome = 'running'`).Scan(&n))
		return n == 0
	}, "no attempt left running")
	for _, r := range w.rows(chaos.ProbeKind, key) {
		require.Equal(t, "succeeded", r.Status, "%v", r)
		if frozen[r.Shard] {
			require.Equal(t, "a", r.Node, "%v", r)
			require.LessOrEqual(t, r.Effects, 2, "%v", r)
		} else {
			require.Equal(t, 1, r.Effects, "%v", r)
		}
	}

	// A run left running by a node that is gone for good, as a crash leaves it (the run row
	// holds its attempt).
	ghost := "manual:ghost-" + testenv.Suffix()
	var id int64
	require.NoError(t, w.pool.QueryRow(ctx, `INSERT INTO job_runs (job, run_key, trigger, scheduled_at, params, status,
		attempt, node, started_at, heartbeat_at) VALUES ($1, $2, 'manual', now(), '{}', 'running', 1, 'ghost',
		now() - interval '1 hour', now() - interval '1 hour') RETURNING id`, chaos.ProbeKind, ghost).Scan(&id))
	rs = w.waitDone(chaos.ProbeKind, ghost, 1, time.Minute)
	exactlyOnce(t, rs)
	require.Equal(t, attempt{1, "ghost", "abandoned"}, rs[0].Attempts[0])
	w.noneRunning(time.Now())
}

// Malformed messages on the real topic are each rejected with their reason, and the node
// keeps serving.
func TestMalformedMessagesAreRejectedAndNodeKeepsServing(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "", nil, chaos.Settings{Jobs: `chaos_probe: {max_attempts: 2}`})
	w.c.Start("a", nil)
	w.ready(1)
	now := time.Now().UTC()
	env := func(fields string) []byte {
		return []byte(`{"job":"chaos_probe","run_key":"manual:bad","trigger":"manual","scheduled_at":"` +
			now.Format(time.RFC3339) + `","shard":{"index":0,"total":1}` + fields + `}`)
	}
	huge := `,"params":{"sleep_ms":1,"pad":"` + strings.Repeat("x", 70<<10) + `"}`
	corpus := []struct {
		name, reason string
		body         []byte
	}{
		{"bad JSON", "invalid JSON", []byte(`{"job":"chaos_probe",`)},
		{"binary garbage", "invalid JSON", []byte{0x00, 0xff, 0xfe, 0x13, 0x37, 0x80, 0x81}},
		{"not an object", "invalid JSON", []byte(`[1,2,3]`)},
		{"wrong type", "invalid JSON", []byte(`{"job":42}`)},
		{"shard as string", "invalid JSON", []byte(strings.Replace(string(env("")), `"index":0`, `"index":"0"`, 1))},
		{"unknown field", "unknown field", env(`,"colour":"red"`)},
		{"unknown job", `unknown job "no_such_job"`, []byte(strings.Replace(string(env("")), "chaos_probe", "no_such_job", 1))},
		{"bad job name", "is not a job name", []byte(strings.Replace(string(env("")), "chaos_probe", "DROP TABLE", 1))},
		{"negative shard", "shard.index", []byte(strings.Replace(string(env("")), `"index":0`, `"index":-1`, 1))},
		{"shard >= total", "shard.index", []byte(strings.Replace(string(env("")), `"index":0`, `"index":1`, 1))},
		{"too many shards", "shard.total", []byte(strings.Replace(string(env("")), `"total":1`, `"total":5000`, 1))},
		{"far future", "in the future", []byte(strings.Replace(string(env("")), now.Format(time.RFC3339), "2999-01-01T00:00:00Z", 1))},
		{"far past", "in the past", []byte(strings.Replace(string(env("")), now.Format(time.RFC3339), "1999-01-01T00:00:00Z", 1))},
		{"bad trigger", "trigger", []byte(strings.Replace(string(env("")), `"manual","sched`, `"cron","sched`, 1))},
		{"bad run key", "run_key", []byte(strings.Replace(string(env("")), "manual:bad", "bad key; drop", 1))},
		{"params not object", "params", env(`,"params":[1]`)},
		{"params wrong type", "params", env(`,"params":{"sleep_ms":"soon"}`)},
		{"params unknown field", "params", env(`,"params":{"rm_rf":true}`)},
		{"params out of range", "params", env(`,"params":{"sleep_ms":-5}`)},
		{"huge params", "params", env(huge)},
		{"huge body", "bytes, more than", []byte(`{"job":"chaos_probe","pad":"` + strings.Repeat("y", 300<<10) + `"}`)},
	}
	ctx := context.Background()
	ids := map[string]int{}
	for i, c := range corpus {
		id, err := w.producer().PublishRaw(ctx, w.mq.Topic, chaos.ProbeKind, []string{"bad-" + testenv.Suffix()}, c.body, time.Time{})
		require.NoError(t, err, c.name)
		ids[id] = i
	}
	// An empty body is refused by the client before it reaches the broker; the decoder's
	// answer to one is covered by FuzzDecode's seed corpus and job's unit tests.
	_, err := w.producer().PublishRaw(ctx, w.mq.Topic, chaos.ProbeKind, nil, nil, time.Time{})
	t.Logf("publishing an empty body: %v", err)

	type rej struct{ msgID, reason string }
	var got []rej
	testenv.Eventually(t, 60*time.Second, func() bool {
		rows, err := w.pool.Query(ctx, `SELECT msg_id, error FROM job_runs WHERE status = 'rejected'`)
		require.NoError(t, err)
		defer rows.Close()
		got = got[:0]
		for rows.Next() {
			var r rej
			require.NoError(t, rows.Scan(&r.msgID, &r.reason))
			got = append(got, r)
		}
		return len(got) >= len(corpus)
	}, "every malformed message to be rejected")
	seen := map[int]bool{}
	for _, r := range got {
		i, ok := ids[r.msgID]
		if !ok {
			continue // the empty body, if the client sent it after all
		}
		require.Contains(t, r.reason, corpus[i].reason, "%s", corpus[i].name)
		seen[i] = true
	}
	require.Len(t, seen, len(corpus))

	key := "manual:after-bad-" + testenv.Suffix()
	w.publish(forced(chaos.ProbeKind, key, 1, `{}`)...)
	exactlyOnce(t, w.waitDone(chaos.ProbeKind, key, 1, 30*time.Second))
	var n int
	require.NoError(t, w.pool.QueryRow(ctx, `SELECT count(*) FROM job_runs WHERE status <> 'rejected' AND job <> $1 AND run_key NOT LIKE 'manual:after-bad-%'`, chaos.NoopKind).Scan(&n))
	require.Zero(t, n, "no malformed message ran")
	w.noneRunning(time.Now())
}

// A config value that would build SQL is refused at start, naming the key, before anything
// is touched: the process exits 1.
func TestSQLInConfiguredTableNameIsRefusedAtStart(t *testing.T) {
	testenv.Integration(t)
	t.Parallel()
	s := chaos.Settings{DSN: "postgres://nobody@127.0.0.1:1/none", LeaseKey: 1,
		MQ: mq.Config{NameServers: []string{"127.0.0.1:1"}, Topic: "T", ConsumerGroup: "g", ProducerGroup: "p"}}
	dir := t.TempDir()
	cfg := s.YAML("bad") + "handlers: {pg_partition: {tables: ['chat_messages; DROP TABLE users']}}\n"
	path := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	out, err := exec.Command(bin, "--config", path).CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "%s", out)
	require.Equal(t, 1, exit.ExitCode())
	require.Contains(t, string(out), "handlers.pg_partition.tables")
}
