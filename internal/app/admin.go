package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Admin is the node's HTTP server: health and readiness for probes.
type Admin struct {
	srv *http.Server
	ln  net.Listener
}

// StartAdmin listens on the configured address and serves in the background.
func StartAdmin(ctx context.Context, n *Node) (*Admin, error) {
	ln, err := net.Listen("tcp", n.Cfg.Admin.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin.listen %s: %w", n.Cfg.Admin.Listen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		body := map[string]any{"node": n.Cfg.Node}
		code := http.StatusOK
		if err := n.Pool.Ping(ctx); err != nil {
			body["postgres"] = err.Error()
			code = http.StatusServiceUnavailable
		} else {
			body["postgres"] = "ok"
		}
		body["consumer"] = "started"
		body["in_flight"] = n.Proc.InFlight()
		if n.Ticker != nil {
			body["ticker"] = n.Ticker.State()
		} else {
			body["ticker"] = "disabled"
		}
		writeJSON(w, code, body)
	})
	a := &Admin{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.Log.Error("admin server", "err", err)
		}
	}()
	return a, nil
}

// Addr is the address the server listens on.
func (a *Admin) Addr() string { return a.ln.Addr().String() }

// Close stops the server.
func (a *Admin) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.srv.Shutdown(ctx)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
