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

	mu      sync.Mutex
	offset  time.Duration
	samples []clockSample // the last clockSamples syncs, oldest first
}

// clockSample is one Sync: the offset it measured and the round trip it took.
type clockSample struct {
	offset, rtt time.Duration
}

// clockSamples is how many syncs the offset is chosen from (a minute at the 10 s sync).
const clockSamples = 6

// NewClock returns a clock that corrects local (time.Now in production; a skewed clock in
// tests) to the database's time. Call Sync before relying on it.
func NewClock(db *pgxpool.Pool, local func() time.Time) *Clock {
	return &Clock{db: db, local: local}
}

// Now is the database's time, estimated without a round trip: the earliest it can read, so
// that a run held until its time by this clock never starts before the database's clock
// reaches it (see add).
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	off := c.offset
	c.mu.Unlock()
	return c.local().Add(off)
}

// Offset is how far the database's clock is at least ahead of the local one.
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
	// Wall clock difference; Round(0) drops the monotonic reading.
	c.add(clockSample{offset: db.Sub(mid.Round(0)), rtt: after.Sub(before)})
	return nil
}

// add keeps s among the recent samples and takes the offset of the one with the shortest
// round trip. A sample's error is up to half its round trip (the query may have waited on
// either leg); on a busy host one slow round trip made the offset tens of milliseconds off,
// and with ticker.deliver_ahead the consumer holds early messages until this clock says so,
// so runs started that much before their time. The shortest recent round trip bounds the
// error best (NTP's clock filter does the same); keeping only recent samples still follows a
// clock that steps. The database read its clock somewhere within the round trip, so the
// true offset is the sample's give or take half its round trip: the low end is kept, and the
// clock runs late by at most a round trip rather than early by half of one (runs held until
// their time started up to that much before it).
func (c *Clock) add(s clockSample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.samples = append(c.samples, s)
	if len(c.samples) > clockSamples {
		c.samples = c.samples[len(c.samples)-clockSamples:]
	}
	best := c.samples[0]
	for _, x := range c.samples[1:] {
		if x.rtt <= best.rtt {
			best = x
		}
	}
	c.offset = best.offset - best.rtt/2
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
