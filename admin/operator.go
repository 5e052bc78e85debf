package admin

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/chatplat/job-service/ledger"
)

// Cluster is what the operator pages read about the whole cluster from the ledger
// (ledger.Ledger implements it).
type Cluster interface {
	Nodes(ctx context.Context, now time.Time, staleAfter, keep time.Duration) ([]ledger.NodeInfo, error)
	RunReport(ctx context.Context, now time.Time, days int, loc *time.Location) ([]ledger.ReportDay, error)
	Backlog(ctx context.Context) ([]ledger.BacklogEntry, error)
}

const (
	// nextFiresShown is how many next fire times the job list and job page show.
	nextFiresShown = 5
	// reportDays is the run report's window (XXL-JOB shows a month).
	reportDays = 30
	// nodesKeep: nodes not heard from for longer drop off the list (their rows are pruned later).
	nodesKeep = 24 * time.Hour
)

var errNoCluster = errors.New("this server has no cluster view (no ledger)")

func (s *Server) operatorRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /api/jobs/{job}/next", s.read(s.apiNextFires))
	m.HandleFunc("GET /api/nodes", s.read(s.apiNodes))
	m.HandleFunc("GET /api/report", s.read(s.apiReport))
	m.HandleFunc("GET /api/backlog", s.read(s.apiBacklog))
	m.HandleFunc("GET /nodes", s.read(s.pageNodes))
}

// NextFires is the answer of GET /api/jobs/{job}/next: times in the job's zone.
type NextFires struct {
	Job      string      `json:"job"`
	Schedule string      `json:"schedule"`
	TimeZone string      `json:"time_zone"`
	Paused   bool        `json:"paused"`
	Next     []time.Time `json:"next"`
}

func (s *Server) apiNextFires(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("job")
	if !s.known(name) {
		writeError(w, http.StatusNotFound, "unknown job \""+name+"\"")
		return
	}
	n := nextFiresShown
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 100 {
			writeError(w, http.StatusBadRequest, "n "+strconv.Quote(v)+": want 1..100")
			return
		}
	}
	spec := s.deps.Spec(name)
	out := NextFires{Job: name, Schedule: spec.Schedule, TimeZone: spec.TimeZone,
		Next: spec.NextFires(s.deps.Now(), n)}
	if sums, err := s.deps.Ledger.Summaries(r.Context(), []string{name}); err == nil {
		out.Paused = sums[name].Paused
	}
	if out.Next == nil {
		out.Next = []time.Time{}
	}
	writeJSON(w, http.StatusOK, out)
}

// NodesView is the answer of GET /api/nodes.
type NodesView struct {
	Nodes      []ledger.NodeInfo `json:"nodes"`
	StaleAfter time.Duration     `json:"stale_after_ns"`
	Live       int               `json:"live"`
	Leader     string            `json:"leader,omitempty"`
}

func (s *Server) nodes(ctx context.Context) (NodesView, error) {
	if s.deps.Cluster == nil {
		return NodesView{}, errNoCluster
	}
	v := NodesView{StaleAfter: s.deps.StaleAfter}
	var err error
	if v.Nodes, err = s.deps.Cluster.Nodes(ctx, s.deps.Now(), s.deps.StaleAfter, nodesKeep); err != nil {
		return v, err
	}
	if v.Nodes == nil {
		v.Nodes = []ledger.NodeInfo{}
	}
	for _, n := range v.Nodes {
		if n.State == ledger.NodeLive {
			v.Live++
		}
		if n.Leader {
			v.Leader = n.Node
		}
	}
	return v, nil
}

func (s *Server) apiNodes(w http.ResponseWriter, r *http.Request) {
	v, err := s.nodes(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// Report is the run report: per day, over all jobs and per job.
type Report struct {
	Days     []string                      `json:"days"`
	TimeZone string                        `json:"time_zone"`
	Total    []ledger.ReportDay            `json:"total"`
	Jobs     map[string][]ledger.ReportDay `json:"jobs"`
}

func (s *Server) report(ctx context.Context, days int, jobs []string) (Report, error) {
	if s.deps.Cluster == nil {
		return Report{}, errNoCluster
	}
	loc := time.UTC
	now := s.deps.Now()
	rows, err := s.deps.Cluster.RunReport(ctx, now, days, loc)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Days: ledger.ReportDays(now, days, loc), TimeZone: loc.String(), Jobs: map[string][]ledger.ReportDay{}}
	rep.Total = ledger.Totals(rows, rep.Days, "")
	for _, j := range jobs {
		rep.Jobs[j] = ledger.Totals(rows, rep.Days, j)
	}
	return rep, nil
}

func (s *Server) apiReport(w http.ResponseWriter, r *http.Request) {
	days := reportDays
	if v := r.URL.Query().Get("days"); v != "" {
		var err error
		if days, err = strconv.Atoi(v); err != nil || days < 1 || days > 366 {
			writeError(w, http.StatusBadRequest, "days "+strconv.Quote(v)+": want 1..366")
			return
		}
	}
	jobs := s.kinds()
	if j := r.URL.Query().Get("job"); j != "" {
		if !s.known(j) {
			writeError(w, http.StatusNotFound, "unknown job \""+j+"\"")
			return
		}
		jobs = []string{j}
	}
	rep, err := s.report(r.Context(), days, jobs)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) pageNodes(w http.ResponseWriter, r *http.Request) {
	v, err := s.nodes(r.Context())
	if err != nil {
		s.fail(w, http.StatusInternalServerError, err)
		return
	}
	p := s.newPage("nodes")
	p.Nodes = &v
	s.render(w, http.StatusOK, "nodes.html", p)
}

// reportChart builds the front page's (or a job page's) run report chart; a server without
// a cluster view shows none.
func (s *Server) reportChart(ctx context.Context, job string) (*ReportChart, error) {
	if s.deps.Cluster == nil {
		return nil, nil
	}
	jobs := []string{}
	if job != "" {
		jobs = []string{job}
	}
	rep, err := s.report(ctx, reportDays, jobs)
	if err != nil {
		return nil, err
	}
	days := rep.Total
	if job != "" {
		days = rep.Jobs[job]
	}
	c := buildReportChart(job, days)
	return &c, nil
}

func (s *Server) apiBacklog(w http.ResponseWriter, r *http.Request) {
	if s.deps.Cluster == nil {
		writeError(w, http.StatusInternalServerError, errNoCluster.Error())
		return
	}
	b, err := s.deps.Cluster.Backlog(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if b == nil {
		b = []ledger.BacklogEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ledger": b})
}
