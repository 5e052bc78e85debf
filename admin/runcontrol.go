package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// RunController is the ledger's run control: logs, cancel, retry (ledger.Ledger has it).
type RunController interface {
	RunLogs(ctx context.Context, id, after int64, limit int) (ledger.RunLogPage, error)
	RequestCancel(ctx context.Context, id int64, by string) (ledger.Status, error)
	Retry(ctx context.Context, id int64, by, runKey string, publish ledger.PublishFunc) (ledger.Run, bool, error)
	Control(ctx context.Context, id int64) (ledger.RunControl, error)
}

func (s *Server) runControlRoutes(m *http.ServeMux) {
	if s.deps.Runs == nil {
		return
	}
	m.HandleFunc("GET /api/runs/{id}/logs", s.read(s.apiRunLogs))
	m.HandleFunc("POST /api/runs/{id}/cancel", s.write("cancel", s.apiCancel))
	m.HandleFunc("POST /api/runs/{id}/retry", s.write("retry", s.apiRetry))
}

func runID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, badRequest("run id %q: not a number", r.PathValue("id"))
	}
	return id, nil
}

// LogsResponse is GET /api/runs/{id}/logs: lines after ?after= (a line id), the run's status
// and whether it finished (a follower stops once done and no lines are left).
type LogsResponse struct {
	ledger.RunLogPage
	Status ledger.Status `json:"status"`
	Done   bool          `json:"done"`
}

func (s *Server) runLogs(ctx context.Context, r *http.Request) (LogsResponse, error) {
	id, err := runID(r)
	if err != nil {
		return LogsResponse{}, err
	}
	var after int64
	if v := r.URL.Query().Get("after"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			return LogsResponse{}, badRequest("after %q: want a line id", v)
		}
	}
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 5000 {
			return LogsResponse{}, badRequest("limit %q: want 1..5000", v)
		}
	}
	// The status first: lines are flushed before the outcome, so once done is read every line is there.
	run, err := s.deps.Ledger.GetRun(ctx, id)
	if errors.Is(err, ledger.ErrNotFound) {
		return LogsResponse{}, notFound("run %d not found", id)
	}
	if err != nil {
		return LogsResponse{}, err
	}
	page, err := s.deps.Runs.RunLogs(ctx, id, after, limit)
	if err != nil {
		return LogsResponse{}, err
	}
	// The status read with the lines: a run that finished since GetRun has its last lines in
	// this page, and a follower told "not done" would ask for (and show) them again.
	status := run.Status
	if page.RunStatus != "" {
		status = page.RunStatus
	}
	return LogsResponse{RunLogPage: page, Status: status, Done: status.Terminal()}, nil
}

func (s *Server) apiRunLogs(w http.ResponseWriter, r *http.Request) {
	resp, err := s.runLogs(r.Context(), r)
	var he *httpError
	switch {
	case errors.As(err, &he):
		writeError(w, he.code, he.msg)
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	default:
		writeJSON(w, http.StatusOK, resp)
	}
}

// ControlRequest is the optional body of the cancel and retry endpoints.
type ControlRequest struct {
	RequestedBy string `json:"requested_by,omitempty"`
}

// CancelResponse says what a cancel did: the run is cancelled, or (pending) the node running
// it will stop it at its next heartbeat.
type CancelResponse struct {
	RunID   int64         `json:"run_id"`
	Status  ledger.Status `json:"status"`
	Pending bool          `json:"pending"`
	By      string        `json:"requested_by"`
}

// controlTarget reads what the cancel and retry endpoints share: the run id from the path and
// who asks (the body's requested_by, else the caller's address).
func controlTarget(r *http.Request) (id int64, by string, err error) {
	if id, err = runID(r); err != nil {
		return 0, "", err
	}
	var req ControlRequest
	if err := decodeBody(r, &req); err != nil {
		return 0, "", err
	}
	return id, requester(r, req.RequestedBy), nil
}

func (s *Server) apiCancel(w http.ResponseWriter, r *http.Request) error {
	id, by, err := controlTarget(r)
	if err != nil {
		return err
	}
	st, err := s.deps.Runs.RequestCancel(r.Context(), id, by)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return notFound("run %d not found", id)
	case errors.Is(err, ledger.ErrNotCancellable):
		return &httpError{code: http.StatusConflict, msg: err.Error()}
	case err != nil:
		return err
	}
	s.deps.Log.Info("run cancel requested through the admin API", "run_id", id, "by", by, "status", st)
	writeJSON(w, http.StatusAccepted, CancelResponse{RunID: id, Status: st, Pending: st == ledger.StatusRunning, By: by})
	return nil
}

// RetryResponse names the new run a retry made.
type RetryResponse struct {
	RunID      int64  `json:"run_id"`
	RetryRunID int64  `json:"retry_run_id"`
	Job        string `json:"job"`
	RunKey     string `json:"run_key"`
	By         string `json:"requested_by"`
}

func (s *Server) apiRetry(w http.ResponseWriter, r *http.Request) error {
	id, by, err := controlTarget(r)
	if err != nil {
		return err
	}
	publish := func(ctx context.Context, env job.Envelope) (string, error) {
		return s.deps.Publisher.Publish(ctx, env, time.Time{})
	}
	run, _, err := s.deps.Runs.Retry(r.Context(), id, by, ledger.RetryKey(id, s.deps.Now()), publish)
	switch {
	case errors.Is(err, ledger.ErrNotFound):
		return notFound("run %d not found", id)
	case errors.Is(err, ledger.ErrNotRetryable):
		return &httpError{code: http.StatusConflict, msg: err.Error()}
	case err != nil:
		return err
	}
	s.deps.Log.Info("run retried through the admin API", "run_id", id, "retry_run_id", run.ID, "run_key", run.RunKey, "by", by)
	writeJSON(w, http.StatusAccepted, RetryResponse{RunID: id, RetryRunID: run.ID, Job: run.Job, RunKey: run.RunKey, By: by})
	return nil
}

// checkParams validates a forced run's params by the job's own rules (decode with unknown
// fields refused, then its Validate), so a bad value is refused at the door with the reason
// instead of ending as a rejected run.
func (s *Server) checkParams(env job.Envelope) error {
	if s.deps.Prepare == nil {
		return nil
	}
	if err := s.deps.Prepare(env); err != nil {
		return badRequest("%v", err)
	}
	return nil
}
