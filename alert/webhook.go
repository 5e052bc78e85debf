package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// webhook POSTs the Alert as JSON. Any 2xx is delivery; anything else is retried.
type webhook struct {
	url    string
	client *http.Client
}

func newWebhook(url string, timeout time.Duration) *webhook {
	return &webhook{url: url, client: &http.Client{Timeout: timeout}}
}

func (w *webhook) Channel() string { return "webhook" }

func (w *webhook) Send(ctx context.Context, a *Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "job-service")
	// Receivers that de-duplicate on their side (PagerDuty-like) can key on this.
	req.Header.Set("X-Job-Service-Dedupe-Key", a.DedupeKey)
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("post webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("post webhook: status %s", resp.Status)
	}
	return nil
}
