package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// S3Mode is what an S3Proxy does with multi-delete requests (POST /bucket?delete).
type S3Mode int32

// Modes.
const (
	// S3Pass forwards everything.
	S3Pass S3Mode = iota
	// S3StallAfterDelete forwards the multi-delete, so the server deletes the keys, then holds
	// the answer until the client gives up (its context ends) or Release is called: S3 timing
	// out after the objects are already gone.
	S3StallAfterDelete
)

// S3Proxy is an HTTP proxy on loopback in front of a real S3 server, with faults a test turns
// on. Requests keep their Host header, so SigV4 signatures made for the proxy's address are
// checked by the server against that same address.
type S3Proxy struct {
	Endpoint string // host:port clients use instead of the server's

	mode     atomic.Int32
	srv      *http.Server
	ln       net.Listener
	stalled  chan struct{} // one send per stalled multi-delete (buffered; extra ones dropped)
	release  chan struct{}
	relOnce  sync.Once
	forwards atomic.Int64 // multi-deletes that reached the server
}

// StartS3Proxy listens on a free loopback port and forwards to target (host:port).
func StartS3Proxy(target string) (*S3Proxy, error) {
	u, err := url.Parse("http://" + target)
	if err != nil {
		return nil, fmt.Errorf("s3 proxy target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("s3 proxy listen: %w", err)
	}
	p := &S3Proxy{Endpoint: ln.Addr().String(), ln: ln, stalled: make(chan struct{}, 64), release: make(chan struct{})}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(res *http.Response) error {
		if !isMultiDelete(res.Request) {
			return nil
		}
		p.forwards.Add(1)
		if S3Mode(p.mode.Load()) != S3StallAfterDelete {
			return nil
		}
		select {
		case p.stalled <- struct{}{}:
		default:
		}
		select {
		case <-res.Request.Context().Done(): // the client gave up or died
			return errors.New("stalled multi-delete: client went away")
		case <-p.release:
			return nil
		}
	}
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		w.WriteHeader(http.StatusBadGateway)
	}
	p.srv = &http.Server{Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func isMultiDelete(r *http.Request) bool {
	if r == nil || r.Method != http.MethodPost {
		return false
	}
	_, ok := r.URL.Query()["delete"]
	return ok
}

// SetMode switches what later multi-deletes meet.
func (p *S3Proxy) SetMode(m S3Mode) { p.mode.Store(int32(m)) }

// Stalled is signalled each time a multi-delete reached the server and its answer is held.
func (p *S3Proxy) Stalled() <-chan struct{} { return p.stalled }

// Forwarded is how many multi-deletes reached the server.
func (p *S3Proxy) Forwarded() int64 { return p.forwards.Load() }

// Release lets every held answer (and every later one) through.
func (p *S3Proxy) Release() { p.relOnce.Do(func() { close(p.release) }) }

// Close stops the proxy.
func (p *S3Proxy) Close() {
	p.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = p.srv.Shutdown(ctx)
	_ = p.srv.Close()
}
