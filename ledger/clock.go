package ledger

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Clock is the database's time as seen from this node: the local clock plus the offset the
// last Sync measured against Postgres' now(). Schedules, misfires and early deliveries are
// decided against it, so a node whose clock is off neither skips nor repeats occurrences:
// the ledger's own staleness checks already use now() on the server.
type Clock struct {
	db    *pgxpool.Pool
	local func() time.Time

	mu     sync.Mutex
	offset time.Duration
}

// NewClock returns a clock that corrects local (time.Now in production; a skewed clock in
// tests) to the database's time. Call Sync before relying on it.
func NewClock(db *pgxpool.Pool, local func() time.Time) *Clock {
	return &Clock{db: db, local: local}
}

// Now is the database's time, estimated without a round trip.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	off := c.offset
	c.mu.Unlock()
	return c.local().Add(off)
}

// Offset is how far the database's clock is ahead of the local one.
func (c *Clock) Offset() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offset
}

// Sync measures the offset once: the database's now() against the midpoint of the round trip.
func (c *Clock) Sync(ctx context.Context) error {
	before := c.local()
	var db time.Time
	if err := c.db.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&db); err != nil {
		return fmt.Errorf("read database clock: %w", err)
	}
	after := c.local()
	mid := before.Add(after.Sub(before) / 2)
	c.mu.Lock()
	c.offset = db.Sub(mid.Round(0)) // wall clock difference; Round(0) drops the monotonic reading
	c.mu.Unlock()
	return nil
}

// Run syncs every interval until ctx ends; a failed sync keeps the last offset.
func (c *Clock) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			sctx, cancel := context.WithTimeout(ctx, every)
			_ = c.Sync(sctx)
			cancel()
		}
	}
}
