package testenv

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// WebhookSink is a local HTTP receiver that records every POST body.
type WebhookSink struct {
	URL string

	mu     sync.Mutex
	bodies [][]byte
	fail   int
}

// NewWebhookSink starts a receiver; it stops at cleanup.
func NewWebhookSink(t testing.TB) *WebhookSink {
	t.Helper()
	s := &WebhookSink{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		if s.fail > 0 {
			s.fail--
			http.Error(w, "failing on purpose", http.StatusServiceUnavailable)
			return
		}
		s.bodies = append(s.bodies, body)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// FailNext makes the next n requests answer 503.
func (s *WebhookSink) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = n
}

// Bodies returns the bodies of the accepted POSTs so far.
func (s *WebhookSink) Bodies() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.bodies...)
}
