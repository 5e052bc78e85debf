package admin

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/chatplat/job-service/ledger"
)

//go:embed templates/*.html
var templateFS embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"when":     fmtWhen,
	"inZone":   func(t time.Time) string { return t.Format("2006-01-02 15:04:05 MST (Mon)") },
	"dur":      fmtDuration,
	"runDur":   func(r ledger.Run) string { return fmtDuration(r.Duration()) },
	"interval": func(r ledger.Run) string { return r.Interval().String() },
	"prettyJS": prettyJSON,
	"short":    func(s string, n int) string { return oneLine(s, n) },
	"deref":    derefInt64,
	"list": func() []string {
		return []string{"scheduled", "running", "retrying", "succeeded", "failed", "rejected", "skipped", "interrupted", "abandoned", "cancelled"}
	},
}).ParseFS(templateFS, "templates/*.html"))

// chartDays is how far back the console's duration charts reach.
const chartDays = 7

// maxPageRows caps the runs (and attempts) one console page renders, whatever the query
// string asks: a page is HTML built in memory, and the API pages through more (limit ≤ 1000).
const maxPageRows = 100

func (s *Server) consoleRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /{$}", s.read(s.pageIndex))
	m.HandleFunc("GET /jobs/{job}", s.read(s.pageJob))
	m.HandleFunc("GET /runs/{id}", s.read(s.pageRun))
	m.HandleFunc("GET /archives", s.read(s.pageArchives))
}

type page struct {
	Title    string
	Node     string
	Now      time.Time
	Writable bool // a token is configured; the buttons can work
	// SecureCookie: the page is served over TLS, so the token cookie is marked Secure.
	SecureCookie bool
	Jobs         []JobView
	Charts       []Chart
	Runs         RunsPage
	Filter       ledger.RunFilter
	NextURL      string
	Detail       *RunDetail
	Job          *JobView
	Error        string
	Nodes        *NodesView
	Report       *ReportChart
}

func (s *Server) newPage(title string) page {
	return page{Title: title, Node: s.deps.Node, Now: s.deps.Now(), Writable: s.cfg.Token != "", SecureCookie: s.tls}
}

func (s *Server) render(w http.ResponseWriter, code int, name string, p page) {
	s.renderAny(w, code, name, p)
}

func (s *Server) fail(w http.ResponseWriter, code int, err error) {
	p := s.newPage("error")
	p.Error = err.Error()
	s.render(w, code, "error.html", p)
}

// runsWithNext lists runs under f and builds the link to the next page.
func (s *Server) runsWithNext(ctx context.Context, r *http.Request, f ledger.RunFilter) (RunsPage, string, error) {
	rp, err := s.runsPage(ctx, f)
	if err != nil {
		return rp, "", err
	}
	next := ""
	if rp.NextBefore > 0 {
		q := r.URL.Query()
		q.Set("before", strconv.FormatInt(rp.NextBefore, 10))
		next = r.URL.Path + "?" + q.Encode()
	}
	return rp, next, nil
}

func (s *Server) charts(ctx context.Context, jobs []string) ([]Chart, error) {
	now := s.deps.Now()
	var out []Chart
	for _, j := range jobs {
		runs, err := s.deps.Ledger.ListRuns(ctx, ledger.RunFilter{Job: j, Since: now.AddDate(0, 0, -chartDays), Limit: 1000})
		if err != nil {
			return nil, err
		}
		out = append(out, buildChart(j, runs, now, chartDays))
	}
	return out, nil
}

func (s *Server) pageIndex(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, err := runFilter(r.URL.Query(), s.deps.Now())
	if err != nil {
		s.fail(w, http.StatusBadRequest, err)
		return
	}
	f.Limit = min(f.Limit, maxPageRows)
	p := s.newPage("job-service")
	p.Filter = f
	if p.Jobs, err = s.jobViews(ctx); err == nil {
		if p.Runs, p.NextURL, err = s.runsWithNext(ctx, r, f); err == nil {
			if p.Charts, err = s.charts(ctx, s.kinds()); err == nil {
				p.Report, err = s.reportChart(ctx, "")
			}
		}
	}
	if err != nil {
		s.fail(w, http.StatusInternalServerError, err)
		return
	}
	s.render(w, http.StatusOK, "index.html", p)
}

func (s *Server) pageJob(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("job")
	if !s.known(name) {
		s.fail(w, http.StatusNotFound, notFound("unknown job %q", name))
		return
	}
	f, err := runFilter(r.URL.Query(), s.deps.Now())
	if err != nil {
		s.fail(w, http.StatusBadRequest, err)
		return
	}
	f.Job = name
	f.Limit = min(f.Limit, maxPageRows)
	p := s.newPage(name)
	p.Filter = f
	jobs, err := s.jobViews(ctx)
	if err == nil {
		for i := range jobs {
			if jobs[i].Job == name {
				p.Job = &jobs[i]
				p.Jobs = jobs[i : i+1]
			}
		}
		if p.Runs, p.NextURL, err = s.runsWithNext(ctx, r, f); err == nil {
			if p.Charts, err = s.charts(ctx, []string{name}); err == nil {
				p.Report, err = s.reportChart(ctx, name)
			}
		}
	}
	if err != nil {
		s.fail(w, http.StatusInternalServerError, err)
		return
	}
	s.render(w, http.StatusOK, "job.html", p)
}

func (s *Server) pageRun(w http.ResponseWriter, r *http.Request) {
	d, err := s.runDetail(r.Context(), r.PathValue("id"))
	if err != nil {
		code := http.StatusInternalServerError
		var he *httpError
		if errors.As(err, &he) {
			code = he.code
		}
		s.fail(w, code, err)
		return
	}
	if len(d.Attempts) > maxPageRows {
		d.Attempts = d.Attempts[len(d.Attempts)-maxPageRows:] // the latest; jobctl show has them all
	}
	p := s.newPage("run " + strconv.FormatInt(d.Run.ID, 10))
	p.Detail = &d
	s.render(w, http.StatusOK, "run.html", p)
}

// fmtWhen formats a time, a *time.Time or nothing for a table cell.
func fmtWhen(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x == nil {
			return "-"
		}
		t = *x
	}
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

func oneLine(s string, n int) string {
	r := []rune(s)
	for i, c := range r {
		if c == '\n' || c == '\r' {
			r[i] = ' '
		}
	}
	if len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return string(r)
}
