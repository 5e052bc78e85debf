package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// fakeLedger is an in-memory stand-in for the ledger methods the server calls.
type fakeLedger struct {
	mu     sync.Mutex
	runs   []ledger.Run // newest first
	paused map[string]string
}

func (f *fakeLedger) ListRuns(_ context.Context, flt ledger.RunFilter) ([]ledger.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ledger.Run
	for _, r := range f.runs {
		if (flt.Job != "" && r.Job != flt.Job) || (flt.Status != "" && r.Status != flt.Status) ||
			(flt.RunKey != "" && r.RunKey != flt.RunKey) || (flt.Before > 0 && r.ID >= flt.Before) ||
			(!flt.Since.IsZero() && r.CreatedAt.Before(flt.Since)) {
			continue
		}
		out = append(out, r)
		if len(out) == flt.Limit {
			break
		}
	}
	return out, nil
}

func (f *fakeLedger) GetRun(_ context.Context, id int64) (ledger.Run, error) {
	for _, r := range f.runs {
		if r.ID == id {
			return r, nil
		}
	}
	return ledger.Run{}, fmt.Errorf("run %d: %w", id, ledger.ErrNotFound)
}

func (f *fakeLedger) Attempts(_ context.Context, id int64) ([]ledger.Attempt, error) {
	return []ledger.Attempt{{Attempt: 1, Node: "n1", Outcome: "succeeded", StartedAt: time.Unix(0, 0)}}, nil
}

func (f *fakeLedger) Summaries(_ context.Context, jobs []string) (map[string]ledger.JobSummary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]ledger.JobSummary{}
	for _, j := range jobs {
		s := ledger.JobSummary{Job: j}
		_, s.Paused = f.paused[j]
		for i := range f.runs {
			if f.runs[i].Job == j {
				s.LastRun = &f.runs[i]
				break
			}
		}
		out[j] = s
	}
	return out, nil
}

// Submit records the runs in memory, then publishes them, as the ledger does.
func (f *fakeLedger) Submit(ctx context.Context, envs []job.Envelope, publish ledger.PublishFunc) ([]ledger.Run, error) {
	out := make([]ledger.Run, len(envs))
	f.mu.Lock()
	for i, env := range envs {
		out[i] = ledger.Run{ID: int64(1000 + len(f.runs)), Job: env.Job, RunKey: env.RunKey, ShardIndex: env.Shard.Index,
			ShardTotal: env.Shard.Total, Trigger: string(env.Trigger), ScheduledAt: env.ScheduledAt, Params: env.Params,
			RequestedBy: env.RequestedBy, Status: ledger.StatusScheduled}
		f.runs = append([]ledger.Run{out[i]}, f.runs...)
	}
	f.mu.Unlock()
	for i, env := range envs {
		id, err := publish(ctx, env)
		if err != nil {
			return out, fmt.Errorf("%w: %w", ledger.ErrRecordedNotPublished, err)
		}
		out[i].MsgID = id
	}
	return out, nil
}

func (f *fakeLedger) Pause(_ context.Context, j, by string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused[j] = by
	return nil
}

func (f *fakeLedger) Resume(_ context.Context, j string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.paused, j)
	return nil
}

type fakePublisher struct {
	mu   sync.Mutex
	sent []job.Envelope
	fail error // returned instead of publishing, when set
}

func (p *fakePublisher) Publish(_ context.Context, env job.Envelope, _ time.Time) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return "", p.fail
	}
	p.sent = append(p.sent, env)
	return fmt.Sprintf("msg-%d", len(p.sent)), nil
}

const testToken = "t0ken-for-tests-only"

func newTestServer(t *testing.T, cfg config.AdminConfig) (*httptest.Server, *fakeLedger, *fakePublisher) {
	t.Helper()
	now := time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC)
	start, end := now.Add(-time.Hour), now.Add(-time.Hour+1500*time.Millisecond)
	fl := &fakeLedger{paused: map[string]string{}}
	for i := int64(60); i >= 1; i-- {
		st := ledger.StatusSucceeded
		errText := ""
		if i%10 == 0 {
			st, errText = ledger.StatusFailed, "boom <script>alert(1)</script>"
		}
		s, e := start.Add(time.Duration(i)*time.Minute), end.Add(time.Duration(i)*time.Minute)
		fl.runs = append(fl.runs, ledger.Run{ID: i, Job: "pg_partition", RunKey: fmt.Sprintf("sched:pg_partition@%d", i),
			ShardTotal: 1, Trigger: "schedule", Status: st, Attempt: 1, StartedAt: &s, FinishedAt: &e, Error: errText,
			ScheduledAt: s, CreatedAt: s, Result: json.RawMessage(`{"tables":[{"table":"chat_messages"}]}`),
			Params: json.RawMessage(`{}`)})
	}
	pub := &fakePublisher{}
	srv := New(cfg, Deps{
		Node: "n1", Ledger: fl, Publisher: pub,
		Kinds: func() []string { return []string{"pg_partition", "probe"} },
		Spec: func(k string) job.Spec {
			if k == "pg_partition" {
				return job.Spec{Schedule: "0 * * * * *"}.WithDefaults()
			}
			return job.Spec{Shards: 2}.WithDefaults()
		},
		Now: func() time.Time { return now },
	})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts, fl, pub
}

func do(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestWritesNeedTheToken(t *testing.T) {
	t.Parallel()
	ts, fl, pub := newTestServer(t, config.AdminConfig{Token: testToken})
	code, body := do(t, "POST", ts.URL+"/api/jobs/pg_partition/run", "", "")
	require.Equal(t, http.StatusUnauthorized, code, body)
	code, _ = do(t, "POST", ts.URL+"/api/jobs/pg_partition/run", "wrong", "")
	require.Equal(t, http.StatusUnauthorized, code)
	require.Empty(t, pub.sent, "nothing published without the token")

	code, body = do(t, "POST", ts.URL+"/api/jobs/probe/run", testToken, `{"params":{"x":1},"requested_by":"alice"}`)
	require.Equal(t, http.StatusAccepted, code, body)
	var resp ForceResponse
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	require.Equal(t, 2, resp.Shards, "the job's configured shards")
	require.Len(t, pub.sent, 2)
	require.Equal(t, resp.RunKey, pub.sent[1].RunKey)
	require.Equal(t, job.TriggerManual, pub.sent[0].Trigger)
	require.Equal(t, "alice", pub.sent[0].RequestedBy)
	require.JSONEq(t, `{"x":1}`, string(pub.sent[0].Params))

	for _, c := range []struct{ path, body, want string }{
		{"/api/jobs/nope/run", "", "unknown job"},
		{"/api/jobs/probe/run", `{"params":[1]}`, "params"},
		{"/api/jobs/probe/run", `{"bogus":1}`, "unknown field"},
		{"/api/jobs/nope/pause", "", "unknown job"},
	} {
		code, body := do(t, "POST", ts.URL+c.path, testToken, c.body)
		require.GreaterOrEqual(t, code, 400, c.path)
		require.Contains(t, body, c.want, c.path)
	}

	code, _ = do(t, "POST", ts.URL+"/api/jobs/pg_partition/pause", testToken, `{"requested_by":"bob"}`)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "bob", fl.paused["pg_partition"])
	_, body = do(t, "GET", ts.URL+"/api/jobs", "", "")
	require.Contains(t, body, `"paused": true`)
	code, _ = do(t, "POST", ts.URL+"/api/jobs/pg_partition/resume", testToken, "")
	require.Equal(t, http.StatusOK, code)
	require.Empty(t, fl.paused)
}

func TestWritesDisabledWithoutToken(t *testing.T) {
	t.Parallel()
	ts, _, pub := newTestServer(t, config.AdminConfig{})
	code, body := do(t, "POST", ts.URL+"/api/jobs/pg_partition/run", "anything", "")
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "writes are disabled")
	require.Empty(t, pub.sent)
	code, _ = do(t, "GET", ts.URL+"/api/jobs", "", "")
	require.Equal(t, http.StatusOK, code, "reads stay open")
}

func TestProtectedReads(t *testing.T) {
	t.Parallel()
	ts, _, _ := newTestServer(t, config.AdminConfig{Token: testToken, ProtectReads: true})
	for _, p := range []string{"/api/jobs", "/api/runs", "/api/runs/1", "/", "/runs/1", "/jobs/pg_partition"} {
		code, _ := do(t, "GET", ts.URL+p, "", "")
		require.Equal(t, http.StatusUnauthorized, code, p)
		code, _ = do(t, "GET", ts.URL+p, testToken, "")
		require.Equal(t, http.StatusOK, code, p)
	}
	// The console's cookie works for pages, never for writes.
	req, _ := http.NewRequest("GET", ts.URL+"/", nil)
	req.AddCookie(&http.Cookie{Name: tokenCookie, Value: testToken})
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	req, _ = http.NewRequest("POST", ts.URL+"/api/jobs/pg_partition/run", nil)
	req.AddCookie(&http.Cookie{Name: tokenCookie, Value: testToken})
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusUnauthorized, res.StatusCode)
	// Probes stay open.
	code, _ := do(t, "GET", ts.URL+"/healthz", "", "")
	require.Equal(t, http.StatusOK, code)
}

func TestRunsFiltersAndPaging(t *testing.T) {
	t.Parallel()
	ts, _, _ := newTestServer(t, config.AdminConfig{})
	var page RunsPage
	_, body := do(t, "GET", ts.URL+"/api/runs?limit=25", "", "")
	require.NoError(t, json.Unmarshal([]byte(body), &page))
	require.Len(t, page.Runs, 25)
	require.Equal(t, int64(60), page.Runs[0].ID)
	require.Equal(t, int64(36), page.NextBefore)
	seen := 25
	for page.NextBefore > 0 {
		_, body = do(t, "GET", fmt.Sprintf("%s/api/runs?limit=25&before=%d", ts.URL, page.NextBefore), "", "")
		page = RunsPage{}
		require.NoError(t, json.Unmarshal([]byte(body), &page))
		seen += len(page.Runs)
	}
	require.Equal(t, 60, seen, "paging visits every run once")

	_, body = do(t, "GET", ts.URL+"/api/runs?status=failed&job=pg_partition", "", "")
	page = RunsPage{}
	require.NoError(t, json.Unmarshal([]byte(body), &page))
	require.Len(t, page.Runs, 6)
	_, body = do(t, "GET", ts.URL+"/api/runs?since=30m", "", "")
	page = RunsPage{}
	require.NoError(t, json.Unmarshal([]byte(body), &page))
	require.NotEmpty(t, page.Runs)
	for _, r := range page.Runs {
		require.False(t, r.CreatedAt.Before(time.Date(2026, 11, 26, 20, 30, 0, 0, time.UTC)))
	}
	for _, q := range []string{"status=done", "since=yesterday", "before=x", "limit=0"} {
		code, _ := do(t, "GET", ts.URL+"/api/runs?"+q, "", "")
		require.Equal(t, http.StatusBadRequest, code, q)
	}
	code, body := do(t, "GET", ts.URL+"/api/runs/10", "", "")
	require.Equal(t, http.StatusOK, code)
	var d RunDetail
	require.NoError(t, json.Unmarshal([]byte(body), &d))
	require.Equal(t, ledger.StatusFailed, d.Run.Status)
	require.Len(t, d.Attempts, 1)
	code, _ = do(t, "GET", ts.URL+"/api/runs/999", "", "")
	require.Equal(t, http.StatusNotFound, code)
}

func TestConsolePages(t *testing.T) {
	t.Parallel()
	ts, _, _ := newTestServer(t, config.AdminConfig{Token: testToken})
	code, body := do(t, "GET", ts.URL+"/", "", "")
	require.Equal(t, http.StatusOK, code)
	for _, want := range []string{`data-job="pg_partition"`, `Run now`, `<svg`, `<polyline`, `status-failed`,
		`href="/runs/60"`, `2026-11-26 21:01:00Z`, "older runs"} {
		require.Contains(t, body, want)
	}
	require.NotContains(t, body, "<script>alert(1)</script>", "run errors are escaped")
	require.Contains(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;")

	code, body = do(t, "GET", ts.URL+"/runs/10", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `&#34;table&#34;: &#34;chat_messages&#34;`, "result JSON, indented")
	require.Contains(t, body, `id="attempts"`)
	code, _ = do(t, "GET", ts.URL+"/runs/999", "", "")
	require.Equal(t, http.StatusNotFound, code)
	code, body = do(t, "GET", ts.URL+"/jobs/pg_partition", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `data-chart="pg_partition"`)
	code, _ = do(t, "GET", ts.URL+"/jobs/nope", "", "")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = do(t, "GET", ts.URL+"/nope", "", "")
	require.Equal(t, http.StatusNotFound, code)
}

func TestChart(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	at := func(h int, d time.Duration) ledger.Run {
		s := now.Add(-time.Duration(h) * time.Hour)
		e := s.Add(d)
		return ledger.Run{ID: int64(h), Status: ledger.StatusSucceeded, StartedAt: &s, FinishedAt: &e}
	}
	c := buildChart("j", []ledger.Run{at(1, 3*time.Second), at(48, time.Second), at(24*30, time.Hour)}, now, 7)
	require.Equal(t, 2, c.Runs, "runs older than the window are left out")
	require.Equal(t, "5s", c.MaxLabel)
	require.Less(t, c.Points[0].X, c.Points[1].X, "oldest first")
	require.Greater(t, c.Points[0].Y, c.Points[1].Y, "the shorter run sits lower")
	require.True(t, buildChart("j", nil, now, 7).Empty)
	require.Equal(t, time.Second, niceCeil(0))
	require.Equal(t, 200*time.Millisecond, niceCeil(150*time.Millisecond))
}

// A forced run whose message the broker refuses is still answered with its runs: they are
// recorded, and the ticker's repair pass publishes them.
func TestForceAnswersItsRunsWhenThePublishFails(t *testing.T) {
	t.Parallel()
	ts, fl, pub := newTestServer(t, config.AdminConfig{Token: testToken})
	pub.mu.Lock()
	pub.fail = errors.New("broker down")
	pub.mu.Unlock()
	code, body := do(t, "POST", ts.URL+"/api/jobs/probe/run", testToken, `{"shards":1}`)
	require.Equal(t, http.StatusAccepted, code, body)
	var resp ForceResponse
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	require.True(t, resp.Unpublished)
	require.Len(t, resp.RunIDs, 1)
	run, err := fl.GetRun(context.Background(), resp.RunIDs[0])
	require.NoError(t, err)
	require.Equal(t, ledger.StatusScheduled, run.Status)
}
