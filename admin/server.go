// Package admin is the node's HTTP server: health and readiness for probes, /metrics, a JSON
// API over the ledger (jobs, runs, one run; force a run, pause, resume) and a server-rendered
// web console on top of the same data. Every node serves it; all nodes show the same ledger.
package admin

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/ticker"
)

// Ledger is what the admin server reads and writes in the ledger.
type Ledger interface {
	ListRuns(ctx context.Context, f ledger.RunFilter) ([]ledger.Run, error)
	GetRun(ctx context.Context, id int64) (ledger.Run, error)
	Attempts(ctx context.Context, runID int64) ([]ledger.Attempt, error)
	Summaries(ctx context.Context, jobs []string) (map[string]ledger.JobSummary, error)
	// Submit records a forced run's rows, then publishes their messages (ledger.Ledger.Submit).
	Submit(ctx context.Context, envs []job.Envelope, publish ledger.PublishFunc) ([]ledger.Run, error)
	Pause(ctx context.Context, jobName, by string) error
	Resume(ctx context.Context, jobName string) error
}

// Publisher sends a forced run's messages to the job topic.
type Publisher interface {
	Publish(ctx context.Context, env job.Envelope, deliverAt time.Time) (string, error)
}

// WriteCounter counts admin writes by action and result (metrics.Metrics implements it).
type WriteCounter interface {
	AdminWrite(action, result string)
}

// Deps are the node's parts the server reports on and acts through. Optional members may be nil.
type Deps struct {
	Node      string
	Ledger    Ledger
	Publisher Publisher
	// Kinds lists the job kinds this node runs; Spec returns one's schedule and policy.
	Kinds func() []string
	Spec  func(kind string) job.Spec
	// Ping checks Postgres for /readyz.
	Ping func(ctx context.Context) error
	// InFlight counts runs executing on this node.
	InFlight func() int
	// Draining reports that the node is shutting down: /readyz answers 503.
	Draining func() bool
	// Ticker reports the ticker's state; nil when this node runs no ticker.
	Ticker func() ticker.State
	// Metrics serves /metrics; nil disables the endpoint.
	Metrics http.Handler
	Writes  WriteCounter
	// Cluster reads nodes and the run report; nil hides those pages.
	Cluster Cluster
	// StaleAfter: a node without a heartbeat for longer is shown as gone (consumer.stale_after).
	StaleAfter time.Duration
	// Runs serves run logs, cancel and retry; nil leaves those endpoints out.
	Runs RunController
	// Prepare decodes and validates a message's params by its job's rules (the handler
	// registry's); nil skips the check before a forced run is published.
	Prepare func(env job.Envelope) error
	// Backfills opens, drives and cancels backfills; nil leaves those endpoints out.
	Backfills Backfiller
	// Archives lists the partition_archive manifest for /archives; nil hides the page.
	Archives ArchiveLister
	Log      *slog.Logger
	Now      func() time.Time
}

// Server is the admin HTTP server.
type Server struct {
	cfg  config.AdminConfig
	deps Deps
	srv  *http.Server
	ln   net.Listener
	mux  *http.ServeMux
	// tls: the server speaks HTTPS (admin.tls_cert/tls_key); the console's cookie is Secure.
	tls bool
	// bgCtx bounds work a request starts and leaves running (a backfill's publishing); Stop
	// ends it and waits for bg.
	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup
}

// New builds the server without listening; Handler serves it in tests.
func New(cfg config.AdminConfig, deps Deps) *Server {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, deps: deps, mux: http.NewServeMux(), tls: cfg.TLSCert != ""}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	s.routes()
	return s
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /readyz", s.readyz)
	if s.deps.Metrics != nil {
		// Scrapers carry no token; metrics hold counts, never run data.
		m.Handle("GET /metrics", s.deps.Metrics)
	}
	m.HandleFunc("GET /api/jobs", s.read(s.apiJobs))
	m.HandleFunc("GET /api/runs", s.read(s.apiRuns))
	m.HandleFunc("GET /api/runs/{id}", s.read(s.apiRun))
	m.HandleFunc("POST /api/jobs/{job}/run", s.write("run", s.apiForceRun))
	m.HandleFunc("POST /api/jobs/{job}/pause", s.write("pause", s.apiPause(true)))
	m.HandleFunc("POST /api/jobs/{job}/resume", s.write("resume", s.apiPause(false)))
	s.runControlRoutes(m)
	s.backfillRoutes(m)
	s.consoleRoutes(m)
	s.operatorRoutes(m)
}

// Handler is the server's routes, for tests and for embedding.
func (s *Server) Handler() http.Handler { return s.mux }

// Start listens on admin.listen and serves in the background until Stop: HTTPS when
// admin.tls_cert and tls_key are set, plain HTTP otherwise.
func (s *Server) Start(context.Context) error {
	var certs *certReloader
	if s.tls {
		var err error
		if certs, err = newCertReloader(s.cfg.TLSCert, s.cfg.TLSKey, s.deps.Log); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("admin.listen %s: %w", s.cfg.Listen, err)
	}
	if certs != nil {
		ln = tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.getCertificate,
			NextProtos: []string{"h2", "http/1.1"}})
	}
	s.ln = ln
	// Every phase of a connection is bounded: the port may face untrusted clients, and one
	// that trickles bytes or parks idle connections must not hold the node's resources.
	cfg := s.cfg.WithDefaults()
	s.srv = &http.Server{Handler: s.mux, ReadHeaderTimeout: min(5*time.Second, cfg.ReadTimeout),
		ReadTimeout: cfg.ReadTimeout, WriteTimeout: cfg.WriteTimeout, IdleTimeout: cfg.IdleTimeout}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.deps.Log.Error("admin server", "err", err)
		}
	}()
	return nil
}

// Addr is the address the server listens on (with the port chosen when listen said :0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the console's address.
func (s *Server) URL() string {
	if s.tls {
		return "https://" + s.Addr() + "/"
	}
	return "http://" + s.Addr() + "/"
}

// Stop stops the server, letting requests in progress finish for a few seconds (at most
// until ctx ends). Idempotent.
func (s *Server) Stop(ctx context.Context) error {
	s.bgCancel()
	s.bg.Wait()
	if s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("stop admin server: %w", err)
	}
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	body := map[string]any{"node": s.deps.Node}
	code := http.StatusOK
	if s.deps.Ping != nil {
		if err := s.deps.Ping(ctx); err != nil {
			body["postgres"] = err.Error()
			code = http.StatusServiceUnavailable
		} else {
			body["postgres"] = "ok"
		}
	}
	body["consumer"] = "started"
	if s.deps.Draining != nil && s.deps.Draining() {
		body["consumer"] = "draining"
		code = http.StatusServiceUnavailable
	}
	if s.deps.InFlight != nil {
		body["in_flight"] = s.deps.InFlight()
	}
	if s.deps.Ticker != nil {
		body["ticker"] = s.deps.Ticker()
	} else {
		body["ticker"] = "disabled"
	}
	writeJSON(w, code, body)
}

// tokenCookie carries the token for page loads when admin.protect_reads is on: a browser
// cannot put a bearer header on a link. Writes never accept it (a cookie is sent by any
// page that posts to us), only the header.
const tokenCookie = "jobservice_admin_token"

func (s *Server) tokenOK(presented string) bool {
	return s.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(presented), []byte(s.cfg.Token)) == 1
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(tok)
	}
	return ""
}

// read guards a read endpoint: open unless admin.protect_reads.
func (s *Server) read(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.ProtectReads && !s.readAllowed(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="job-service"`)
			writeError(w, http.StatusUnauthorized, "reads are protected: send Authorization: Bearer <admin.token>")
			return
		}
		h(w, r)
	}
}

func (s *Server) readAllowed(r *http.Request) bool {
	if s.tokenOK(bearer(r)) {
		return true
	}
	c, err := r.Cookie(tokenCookie)
	return err == nil && s.tokenOK(c.Value)
}

// write guards a write endpoint: it needs the bearer token, and without a configured token
// writes are off altogether.
func (s *Server) write(action string, h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		count := func(result string) {
			if s.deps.Writes != nil {
				s.deps.Writes.AdminWrite(action, result)
			}
		}
		if s.cfg.Token == "" {
			count("denied")
			writeError(w, http.StatusForbidden, "writes are disabled: no admin.token is configured (set JOBSERVICE_ADMIN__TOKEN)")
			return
		}
		if !s.tokenOK(bearer(r)) {
			count("denied")
			w.Header().Set("WWW-Authenticate", `Bearer realm="job-service"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong token: send Authorization: Bearer <admin.token>")
			return
		}
		if err := h(w, r); err != nil {
			count("error")
			var he *httpError
			if errors.As(err, &he) {
				writeError(w, he.code, he.msg)
				return
			}
			s.deps.Log.Error("admin write", "action", action, "err", err)
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		count("ok")
	}
}

// httpError is an error with the status code to answer it with.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &httpError{code: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
