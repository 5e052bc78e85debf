package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// JobView is one job as the API and the console show it.
type JobView struct {
	Job         string     `json:"job"`
	Schedule    string     `json:"schedule"`
	TimeZone    string     `json:"time_zone"`
	Enabled     bool       `json:"enabled"`
	Paused      bool       `json:"paused"`
	Shards      int        `json:"shards"`
	MaxAttempts int        `json:"max_attempts"`
	NextFire    *time.Time `json:"next_fire,omitempty"`
	// NextFires are the next few fire times in the job's zone (GET /api/jobs/{job}/next?n= for more).
	NextFires    []time.Time   `json:"next_fires,omitempty"`
	LastRunID    int64         `json:"last_run_id,omitempty"`
	LastStatus   string        `json:"last_status,omitempty"`
	LastRunAt    *time.Time    `json:"last_run_at,omitempty"`
	LastDuration time.Duration `json:"last_duration_ns,omitempty"`
	LastError    string        `json:"last_error,omitempty"`
	Running      int           `json:"running"`
	Failed24h    int           `json:"failed_24h"`
}

func (s *Server) kinds() []string {
	k := slices.Clone(s.deps.Kinds())
	slices.Sort(k)
	return k
}

func (s *Server) known(kind string) bool { return slices.Contains(s.deps.Kinds(), kind) }

func (s *Server) jobViews(ctx context.Context) ([]JobView, error) {
	kinds := s.kinds()
	sums, err := s.deps.Ledger.Summaries(ctx, kinds)
	if err != nil {
		return nil, err
	}
	now := s.deps.Now()
	out := make([]JobView, 0, len(kinds))
	for _, k := range kinds {
		spec := s.deps.Spec(k)
		sum := sums[k]
		v := JobView{Job: k, Schedule: spec.Schedule, TimeZone: spec.TimeZone, Enabled: spec.IsEnabled(),
			Paused: sum.Paused, Shards: spec.Shards, MaxAttempts: spec.MaxAttempts, Running: sum.Running,
			Failed24h: sum.FailedLast}
		if next, ok := spec.NextFire(now); ok && !v.Paused {
			v.NextFire = &next
			v.NextFires = spec.NextFires(now, nextFiresShown)
		}
		if lr := sum.LastRun; lr != nil {
			v.LastRunID, v.LastStatus, v.LastError = lr.ID, string(lr.Status), lr.Error
			at := lr.CreatedAt
			v.LastRunAt = &at
			v.LastDuration = lr.Duration()
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *Server) apiJobs(w http.ResponseWriter, r *http.Request) {
	jobs, err := s.jobViews(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs})
}

// runFilter reads job, status, run_key, since, before and limit from the query string.
func runFilter(q map[string][]string, now time.Time) (ledger.RunFilter, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	f := ledger.RunFilter{Job: get("job"), RunKey: get("run_key"), Status: ledger.Status(get("status"))}
	if f.Status != "" && !validStatus(f.Status) {
		return f, fmt.Errorf("status %q: not a run status", f.Status)
	}
	if v := get("since"); v != "" {
		t, err := parseSince(v, now)
		if err != nil {
			return f, err
		}
		f.Since = t
	}
	if v := get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return f, fmt.Errorf("before %q: want a run id", v)
		}
		f.Before = n
	}
	if v := get("backfill"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return f, fmt.Errorf("backfill %q: want a backfill id", v)
		}
		f.Backfill = n
	}
	f.Limit = 50
	if v := get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return f, fmt.Errorf("limit %q: want 1..1000", v)
		}
		f.Limit = n
	}
	return f, nil
}

func validStatus(st ledger.Status) bool {
	switch st {
	case ledger.StatusScheduled, ledger.StatusRunning, ledger.StatusRetrying, ledger.StatusSucceeded,
		ledger.StatusFailed, ledger.StatusRejected, ledger.StatusSkipped, ledger.StatusInterrupted,
		ledger.StatusAbandoned, ledger.StatusCancelled:
		return true
	}
	return false
}

// parseSince accepts a duration ("36h"), days ("7d") or an RFC 3339 time or date, as jobctl does.
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil {
			return now.AddDate(0, 0, -n), nil
		}
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("since %q: want a duration (24h, 7d) or a date (2026-11-01)", v)
}

// RunsPage is a page of runs, newest first. NextBefore, when set, fetches the next page
// (?before=NextBefore).
type RunsPage struct {
	Runs       []ledger.Run `json:"runs"`
	NextBefore int64        `json:"next_before,omitempty"`
}

func (s *Server) runsPage(ctx context.Context, f ledger.RunFilter) (RunsPage, error) {
	runs, err := s.deps.Ledger.ListRuns(ctx, f)
	if err != nil {
		return RunsPage{}, err
	}
	p := RunsPage{Runs: runs}
	if p.Runs == nil {
		p.Runs = []ledger.Run{}
	}
	if len(runs) == f.Limit && len(runs) > 0 {
		p.NextBefore = runs[len(runs)-1].ID
	}
	return p, nil
}

func (s *Server) apiRuns(w http.ResponseWriter, r *http.Request) {
	f, err := runFilter(r.URL.Query(), s.deps.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := s.runsPage(r.Context(), f)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// RunDetail is one run with its attempts.
type RunDetail struct {
	Run      ledger.Run       `json:"run"`
	Attempts []ledger.Attempt `json:"attempts"`
	// Control holds the cancel request and the retry links, when the server has run control.
	Control *ledger.RunControl `json:"control,omitempty"`
}

func (s *Server) runDetail(ctx context.Context, idText string) (RunDetail, error) {
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil || id < 1 {
		return RunDetail{}, badRequest("run id %q: not a number", idText)
	}
	run, err := s.deps.Ledger.GetRun(ctx, id)
	if errors.Is(err, ledger.ErrNotFound) {
		return RunDetail{}, notFound("run %d not found", id)
	}
	if err != nil {
		return RunDetail{}, err
	}
	attempts, err := s.deps.Ledger.Attempts(ctx, id)
	if err != nil {
		return RunDetail{}, err
	}
	if attempts == nil {
		attempts = []ledger.Attempt{}
	}
	d := RunDetail{Run: run, Attempts: attempts}
	if s.deps.Runs != nil {
		c, err := s.deps.Runs.Control(ctx, id)
		if err != nil {
			return RunDetail{}, err
		}
		d.Control = &c
	}
	return d, nil
}

func (s *Server) apiRun(w http.ResponseWriter, r *http.Request) {
	d, err := s.runDetail(r.Context(), r.PathValue("id"))
	var he *httpError
	switch {
	case errors.As(err, &he):
		writeError(w, he.code, he.msg)
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		writeJSON(w, http.StatusOK, d)
	}
}

// ForceRequest is the optional body of POST /api/jobs/{job}/run.
type ForceRequest struct {
	Params      json.RawMessage `json:"params,omitempty"`
	Shards      int             `json:"shards,omitempty"`
	RequestedBy string          `json:"requested_by,omitempty"`
}

// ForceResponse says what was recorded and published: the run of each shard (RunIDs, in
// shard order), its message, and the interval the run stands for.
type ForceResponse struct {
	Job      string       `json:"job"`
	RunKey   string       `json:"run_key"`
	Shards   int          `json:"shards"`
	RunIDs   []int64      `json:"run_ids"`
	MsgIDs   []string     `json:"msg_ids"`
	Interval job.Interval `json:"interval"`
	// Unpublished: the runs are recorded but the broker refused a message; the ticker's repair
	// pass publishes it (msg_ids has "" for it).
	Unpublished bool `json:"unpublished,omitempty"`
}

func decodeBody(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, job.MaxMessageBytes))
	if err != nil {
		return badRequest("read body: %v", err)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("body: %v", err)
	}
	return nil
}

func requester(r *http.Request, asked string) string {
	if asked != "" {
		return asked
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "admin-api@" + host
}

// apiForceRun records and publishes the same runs `jobctl run` does (job.NewManualRun,
// ledger.Ledger.Submit) and answers with their ids.
func (s *Server) apiForceRun(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("job")
	if !s.known(name) {
		return notFound("unknown job %q", name)
	}
	var req ForceRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	if req.Shards == 0 {
		req.Shards = s.deps.Spec(name).Shards
	}
	mr, err := job.NewManualRun(name, req.Params, req.Shards, requester(r, req.RequestedBy), s.deps.Now(), s.known)
	if err != nil {
		return badRequest("%v", err)
	}
	if err := s.checkParams(mr.Envelopes[0]); err != nil {
		return err
	}
	publish := func(ctx context.Context, env job.Envelope) (string, error) {
		return s.deps.Publisher.Publish(ctx, env, time.Time{})
	}
	// The rows first: a message lost or dead-lettered before any claim leaves its run behind.
	runs, err := s.deps.Ledger.Submit(r.Context(), mr.Envelopes, publish)
	unpublished := errors.Is(err, ledger.ErrRecordedNotPublished) && len(runs) == len(mr.Envelopes)
	switch {
	case job.IsReject(err):
		return badRequest("%v", err)
	case unpublished:
		// The runs exist; the ticker's repair pass publishes what the broker refused now.
		s.deps.Log.Warn("forced run recorded, publish failed; the repair pass publishes it", "run_key", mr.RunKey, "err", err)
	case err != nil:
		return fmt.Errorf("force %s: %w", mr.RunKey, err)
	}
	resp := ForceResponse{Job: name, RunKey: mr.RunKey, Shards: len(mr.Envelopes), Unpublished: unpublished}
	for _, run := range runs {
		resp.RunIDs = append(resp.RunIDs, run.ID)
		resp.MsgIDs = append(resp.MsgIDs, run.MsgID)
		resp.Interval = run.Interval()
	}
	s.deps.Log.Info("run forced through the admin API", "job", name, "run_key", mr.RunKey, "run_ids", resp.RunIDs,
		"requested_by", mr.Envelopes[0].RequestedBy)
	writeJSON(w, http.StatusAccepted, resp)
	return nil
}

// PauseRequest is the optional body of the pause and resume endpoints.
type PauseRequest struct {
	RequestedBy string `json:"requested_by,omitempty"`
}

func (s *Server) apiPause(pause bool) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		name := r.PathValue("job")
		if !s.known(name) {
			return notFound("unknown job %q", name)
		}
		var req PauseRequest
		if err := decodeBody(r, &req); err != nil {
			return err
		}
		by := requester(r, req.RequestedBy)
		var err error
		if pause {
			err = s.deps.Ledger.Pause(r.Context(), name, by)
		} else {
			err = s.deps.Ledger.Resume(r.Context(), name)
		}
		if err != nil {
			return err
		}
		s.deps.Log.Info("job pause changed through the admin API", "job", name, "paused", pause, "by", by)
		writeJSON(w, http.StatusOK, map[string]any{"job": name, "paused": pause})
		return nil
	}
}
