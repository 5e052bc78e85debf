package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// Backfiller is the ledger's backfills (ledger.Ledger has it).
type Backfiller interface {
	OpenBackfill(ctx context.Context, req ledger.BackfillRequest) (ledger.Backfill, error)
	GetBackfill(ctx context.Context, id int64) (ledger.Backfill, error)
	Periods(ctx context.Context, b ledger.Backfill) ([]ledger.Period, error)
	DriveBackfill(ctx context.Context, b ledger.Backfill, wait bool, now func() time.Time, publish ledger.PublishFunc,
		report func(ledger.BackfillProgress)) (ledger.BackfillProgress, error)
	CancelBackfill(ctx context.Context, id int64, by string) (int, error)
}

func (s *Server) backfillRoutes(m *http.ServeMux) {
	if s.deps.Backfills == nil {
		return
	}
	m.HandleFunc("POST /api/jobs/{job}/backfill", s.write("backfill", s.apiBackfill))
	m.HandleFunc("GET /api/backfills/{id}", s.read(s.apiBackfillStatus))
	m.HandleFunc("POST /api/backfills/{id}/cancel", s.write("backfill_cancel", s.apiBackfillCancel))
}

// BackfillRequest is the body of POST /api/jobs/{job}/backfill: the dates (YYYY-MM-DD, both
// included), the other params of every run, and how many runs may be queued or running at
// once (0: 1 for a skip_if_running job, else 4).
type BackfillRequest struct {
	From        string          `json:"from"`
	To          string          `json:"to"`
	Params      json.RawMessage `json:"params,omitempty"`
	MaxActive   int             `json:"max_active,omitempty"`
	RequestedBy string          `json:"requested_by,omitempty"`
}

// BackfillStatus is a backfill with each of its periods and where it stands.
type BackfillStatus struct {
	Backfill ledger.Backfill `json:"backfill"`
	Periods  []ledger.Period `json:"periods"`
	Total    int             `json:"total"`
	Pending  int             `json:"pending"` // periods without a run, or whose run ended without succeeding
}

// apiBackfill opens the backfill and publishes its periods from this node in the background,
// keeping its concurrency limit; it answers at once with the backfill. Asked again, the same
// backfill publishes only what is missing or failed. If this node stops meanwhile, asking
// again resumes it.
func (s *Server) apiBackfill(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("job")
	if !s.known(name) {
		return notFound("unknown job %q", name)
	}
	var req BackfillRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	first, err := time.Parse(time.DateOnly, req.From)
	if err != nil {
		return badRequest("from %q: want a date (2026-11-01)", req.From)
	}
	last, err := time.Parse(time.DateOnly, req.To)
	if err != nil {
		return badRequest("to %q: want a date (2026-11-30)", req.To)
	}
	maxActive, err := job.BackfillConcurrency(s.deps.Spec(name), req.MaxActive)
	if err != nil {
		return badRequest("%v", err)
	}
	b, err := s.deps.Backfills.OpenBackfill(r.Context(), ledger.BackfillRequest{Job: name, From: first, To: last,
		Params: req.Params, MaxActive: maxActive, By: requester(r, req.RequestedBy)})
	if err != nil {
		return badRequest("%v", err)
	}
	st, err := s.backfillStatus(r.Context(), b)
	if err != nil {
		return err
	}
	publish := func(ctx context.Context, env job.Envelope) (string, error) {
		return s.deps.Publisher.Publish(ctx, env, time.Time{})
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		prog, err := s.deps.Backfills.DriveBackfill(s.bgCtx, b, false, s.deps.Now, publish, nil)
		log := s.deps.Log.With("backfill_id", b.ID, "job", b.Job)
		if err != nil && !errors.Is(err, ledger.ErrBackfillCancelled) {
			log.Error("backfill stopped; ask for it again to resume", "published", prog.Published, "err", err)
			return
		}
		log.Info("backfill published", "published", prog.Published, "periods", prog.Total, "err", err)
	}()
	s.deps.Log.Info("backfill asked through the admin API", "backfill_id", b.ID, "job", name, "from", req.From,
		"to", req.To, "pending", st.Pending, "by", b.RequestedBy)
	writeJSON(w, http.StatusAccepted, st)
	return nil
}

func (s *Server) backfillStatus(ctx context.Context, b ledger.Backfill) (BackfillStatus, error) {
	periods, err := s.deps.Backfills.Periods(ctx, b)
	if err != nil {
		return BackfillStatus{}, err
	}
	st := BackfillStatus{Backfill: b, Periods: periods, Total: len(periods)}
	for _, p := range periods {
		if p.Pending() {
			st.Pending++
		}
	}
	return st, nil
}

func backfillID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, badRequest("backfill id %q: not a number", r.PathValue("id"))
	}
	return id, nil
}

func (s *Server) apiBackfillStatus(w http.ResponseWriter, r *http.Request) {
	err := func() error {
		id, err := backfillID(r)
		if err != nil {
			return err
		}
		b, err := s.deps.Backfills.GetBackfill(r.Context(), id)
		if errors.Is(err, ledger.ErrNotFound) {
			return notFound("backfill %d not found", id)
		}
		if err != nil {
			return err
		}
		st, err := s.backfillStatus(r.Context(), b)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, st)
		return nil
	}()
	var he *httpError
	switch {
	case errors.As(err, &he):
		writeError(w, he.code, he.msg)
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func (s *Server) apiBackfillCancel(w http.ResponseWriter, r *http.Request) error {
	id, err := backfillID(r)
	if err != nil {
		return err
	}
	var req ControlRequest
	if err := decodeBody(r, &req); err != nil {
		return err
	}
	by := requester(r, req.RequestedBy)
	n, err := s.deps.Backfills.CancelBackfill(r.Context(), id, by)
	if errors.Is(err, ledger.ErrNotFound) {
		return notFound("backfill %d not found", id)
	}
	if err != nil {
		return err
	}
	s.deps.Log.Info("backfill cancelled through the admin API", "backfill_id", id, "runs_cancelled", n, "by", by)
	writeJSON(w, http.StatusOK, map[string]any{"backfill_id": id, "runs_cancelled": n, "requested_by": by})
	return nil
}
