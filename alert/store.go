package alert

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// store is the de-duplication table job_alerts (ledger migration 00004).
type store struct {
	db     *pgxpool.Pool
	window time.Duration
}

// claim is this node's right to deliver one alert on one channel.
type claim struct {
	key, channel string
	at           time.Time
	prevSent     *time.Time
	// Suppressed is how many occurrences were not sent since the previous delivery.
	Suppressed int64
}

// tryClaim records an occurrence of the problem and reports whether this node should send
// it on channel: yes when it was never delivered or the last delivery is older than the
// window. The row lock makes concurrent nodes take turns, and the second sees the first's
// sent_at.
func (s *store) tryClaim(ctx context.Context, a *Alert, channel string, now time.Time) (*claim, error) {
	now = now.Truncate(time.Microsecond) // Postgres's precision: release matches sent_at exactly
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("claim alert: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, `INSERT INTO job_alerts (dedupe_key, channel, job, fingerprint, summary, first_seen_at, last_seen_at)
		VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING`,
		a.DedupeKey, channel, a.Job, truncate(a.Fingerprint, 2000), truncate(a.Error, 2000), now); err != nil {
		return nil, fmt.Errorf("claim alert: %w", err)
	}
	var sent *time.Time
	var suppressed int64
	if err := tx.QueryRow(ctx, `SELECT sent_at, suppressed FROM job_alerts WHERE dedupe_key = $1 AND channel = $2 FOR UPDATE`,
		a.DedupeKey, channel).Scan(&sent, &suppressed); err != nil {
		return nil, fmt.Errorf("claim alert: %w", err)
	}
	send := sent == nil || !sent.After(now.Add(-s.window))
	if send {
		_, err = tx.Exec(ctx, `UPDATE job_alerts SET sent_at = $3, suppressed = 0, last_seen_at = $3, summary = $4, last_run_id = $5
			WHERE dedupe_key = $1 AND channel = $2`, a.DedupeKey, channel, now, truncate(a.Error, 2000), a.RunID)
	} else {
		_, err = tx.Exec(ctx, `UPDATE job_alerts SET suppressed = suppressed + 1, last_seen_at = GREATEST(last_seen_at, $3),
			summary = $4, last_run_id = $5 WHERE dedupe_key = $1 AND channel = $2`, a.DedupeKey, channel, now, truncate(a.Error, 2000), a.RunID)
	}
	if err != nil {
		return nil, fmt.Errorf("claim alert: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("claim alert: %w", err)
	}
	if !send {
		return nil, nil
	}
	return &claim{key: a.DedupeKey, channel: channel, at: now, prevSent: sent, Suppressed: suppressed}, nil
}

// release undoes a claim whose delivery failed, so the next occurrence tries again. It
// leaves the row alone if another node has claimed since.
func (s *store) release(ctx context.Context, c *claim) error {
	_, err := s.db.Exec(ctx, `UPDATE job_alerts SET sent_at = $4, suppressed = suppressed + $5
		WHERE dedupe_key = $1 AND channel = $2 AND sent_at = $3`, c.key, c.channel, c.at, c.prevSent, c.Suppressed+1)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("release alert claim: %w", err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary so Postgres accepts the text.
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
