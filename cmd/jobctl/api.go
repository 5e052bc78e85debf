package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// tokenEnv names the variable jobctl --server reads the admin token from (never a flag: a
// flag would land in shell history and ps output).
const tokenEnv = "JOBSERVICE_ADMIN_TOKEN"

// apiClient talks to a node's admin API, so an operator needs no DSN or broker route.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func newAPIClient(g *globals) (*apiClient, error) {
	server := g.server
	u, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &exitError{code: exitUsage, err: fmt.Errorf("--server %q: want http(s)://host:port", server)}
	}
	token := os.Getenv(tokenEnv)
	if token != "" && u.Scheme == "http" && !isLoopback(u.Hostname()) && !g.insecure {
		return nil, &exitError{code: exitUsage, err: fmt.Errorf(
			"--server %s: plain HTTP to another host would send $%s in clear; use https:// (the node's admin.tls_cert/tls_key), "+
				"a loopback address (kubectl port-forward), or --insecure to send it anyway", server, tokenEnv)}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if g.caCert != "" {
		pem, err := os.ReadFile(g.caCert)
		if err != nil {
			return nil, &exitError{code: exitUsage, err: fmt.Errorf("--ca-cert: %w", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &exitError{code: exitUsage, err: fmt.Errorf("--ca-cert %s: no PEM certificate in it", g.caCert)}
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &apiClient{base: u.String(), token: token, http: &http.Client{Timeout: 30 * time.Second, Transport: tr}}, nil
}

// isLoopback reports whether host names this machine: a token sent there never crosses a
// network.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// do sends a request and decodes a 2xx answer into out; any other answer is an error carrying
// the server's message.
func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, c.base+path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if res.StatusCode/100 != 2 {
		var e struct{ Error string }
		_ = json.Unmarshal(data, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		hint := ""
		if res.StatusCode == http.StatusUnauthorized && c.token == "" {
			hint = " (set " + tokenEnv + ")"
		}
		return fmt.Errorf("%s %s: %s: %s%s", method, path, res.Status, e.Error, hint)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}
