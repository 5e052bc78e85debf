package consumer

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes the processor.
type Config struct {
	// Node names this process in the ledger (run.node, attempt rows); the config's top-level
	// node sets it.
	Node string `yaml:"node" deprecated:"set node (top level), which always replaced this key"`
	// HeartbeatInterval is how often running runs are marked alive: a sixth of stale_after
	// unless set.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval" deprecated:"set consumer.stale_after; the heartbeat interval is a sixth of it"`
	// StaleAfter: a running run whose heartbeat is older belongs to a vanished node and may be
	// taken over. Runs heartbeat six times within it, so one slow database round trip is not
	// death.
	StaleAfter time.Duration `yaml:"stale_after"`
	// DrainTimeout is how long a stopping node lets runs in flight finish before it
	// interrupts them.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// EarlyTolerance: a timer message that arrives this much before its scheduled_at (the
	// broker rounds delivery down to its timer precision) is held until then; one that is
	// earlier still is re-published as a timer message.
	// The config derives it from ticker.deliver_ahead (plus 2 s).
	EarlyTolerance time.Duration `yaml:"early_tolerance" deprecated:"set ticker.deliver_ahead; the hold is deliver_ahead plus 2s"`
	// RetryBackoff is the first retry delay; it doubles per attempt up to RetryBackoffMax.
	RetryBackoff    time.Duration `yaml:"retry_backoff"`
	RetryBackoffMax time.Duration `yaml:"retry_backoff_max"`
	// Goroutines is how many messages one node has in hand at once: decoded, being claimed,
	// waiting for a handler slot, running or being recorded. Waiting is cheap, and the more
	// messages are in hand the more claims and outcomes share one ledger statement; but every
	// claimed run in hand is heartbeated, so this also bounds the heartbeat statement.
	Goroutines int `yaml:"goroutines"`
	// ConsumeBatch is how many messages of one queue a delivery hands over at once (1..1024):
	// their runs are claimed together and their outcomes coalesced, each run still waiting for
	// its own handler slot (max_running). Goroutines still bounds the messages claimed and in hand;
	// the rest of a delivery waits, unclaimed, for those to finish.
	// Default DefaultConsumeBatch.
	ConsumeBatch int `yaml:"consume_batch" deprecated:"remove it: the batch is the constant consumer.DefaultConsumeBatch (32)"`
	// ScheduleGoroutines is Goroutines for the schedule lane (the schedule topic's consumer):
	// its messages in hand have tokens of their own, so a fire never waits for one held by a
	// forced run. A fire takes one from its delivery, up to ticker.deliver_ahead before its
	// time, until its outcome is recorded: at least the fires of a second on one node. Half of
	// Goroutines unless set.
	ScheduleGoroutines int `yaml:"schedule_goroutines" deprecated:"set consumer.goroutines; the schedule lane gets half as many"`
	// MaxRunning is how many handlers run at once on one node: the limit that protects the
	// systems the jobs work on. A claimed run waits for a slot (heartbeating) before it starts.
	MaxRunning int `yaml:"max_running"`
	// LedgerBatch bounds the claims (and, separately, the outcomes) written in one ledger
	// statement; LedgerFlushers bounds such statements in flight at once, for each. Defaults
	// DefaultLedgerBatch and DefaultLedgerFlushers.
	LedgerBatch    int `yaml:"ledger_batch" deprecated:"remove it: the batch is the constant consumer.DefaultLedgerBatch (64)"`
	LedgerFlushers int `yaml:"ledger_flushers" deprecated:"remove it: the flushers are the constant consumer.DefaultLedgerFlushers (2)"`
}

// Settings only a benchmark turned, constants now, with what was measured (BENCHMARKS.md,
// "Batch consume" and the peers comparison).
const (
	// DefaultConsumeBatch: 128 instead of 32 gave +8% dispatch at goroutines 1000, inside
	// the ±20% run-to-run spread; 32 keeps a long run's delivery small.
	DefaultConsumeBatch = 32
	// DefaultLedgerBatch: 1000 did not move dispatch beyond the run-to-run spread; 64 keeps
	// one statement short.
	DefaultLedgerBatch = 64
	// DefaultLedgerFlushers: 1 did not move dispatch beyond the run-to-run spread; a second
	// statement in flight hides one slow round trip.
	DefaultLedgerFlushers = 2
)

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	switch {
	case c.StaleAfter == 0 && c.HeartbeatInterval == 0:
		c.StaleAfter = 30 * time.Second
	case c.StaleAfter == 0:
		c.StaleAfter = 6 * c.HeartbeatInterval
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = c.StaleAfter / 6
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.EarlyTolerance == 0 {
		c.EarlyTolerance = 3 * time.Second
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 5 * time.Second
	}
	if c.RetryBackoffMax == 0 {
		c.RetryBackoffMax = 10 * time.Minute
	}
	if c.Goroutines == 0 {
		c.Goroutines = 64
	}
	if c.ConsumeBatch == 0 {
		c.ConsumeBatch = DefaultConsumeBatch
	}
	if c.ScheduleGoroutines == 0 {
		c.ScheduleGoroutines = max(1, c.Goroutines/2)
	}
	if c.MaxRunning == 0 {
		c.MaxRunning = 8
	}
	if c.LedgerBatch == 0 {
		c.LedgerBatch = DefaultLedgerBatch
	}
	if c.LedgerFlushers == 0 {
		c.LedgerFlushers = DefaultLedgerFlushers
	}
	return c
}

// Validate names the first bad key.
func (c Config) Validate() error {
	switch {
	case c.Node == "":
		return errors.New("node: required (defaults to the host name)")
	case c.HeartbeatInterval < 100*time.Millisecond:
		return fmt.Errorf("heartbeat_interval: %s is below 100ms", c.HeartbeatInterval)
	case c.StaleAfter < 2*c.HeartbeatInterval:
		return fmt.Errorf("stale_after: %s must be at least twice heartbeat_interval (%s)", c.StaleAfter, c.HeartbeatInterval)
	case c.DrainTimeout < 0:
		return fmt.Errorf("drain_timeout: %s is negative", c.DrainTimeout)
	case c.RetryBackoff < 0 || c.RetryBackoffMax < c.RetryBackoff:
		return fmt.Errorf("retry_backoff: %s..%s is not a range", c.RetryBackoff, c.RetryBackoffMax)
	case c.Goroutines < 1 || c.Goroutines > 1000:
		return fmt.Errorf("goroutines: %d is outside 1..1000", c.Goroutines)
	case c.ConsumeBatch < 1 || c.ConsumeBatch > 1024:
		return fmt.Errorf("consume_batch: %d is outside 1..1024", c.ConsumeBatch)
	case c.ScheduleGoroutines < 1 || c.ScheduleGoroutines > 1000:
		return fmt.Errorf("schedule_goroutines: %d is outside 1..1000", c.ScheduleGoroutines)
	case c.MaxRunning < 1 || c.MaxRunning > c.Goroutines:
		return fmt.Errorf("max_running: %d is outside 1..goroutines (%d)", c.MaxRunning, c.Goroutines)
	case c.LedgerBatch < 1 || c.LedgerBatch > 1000:
		return fmt.Errorf("ledger_batch: %d is outside 1..1000", c.LedgerBatch)
	case c.LedgerFlushers < 1 || c.LedgerFlushers > 16:
		return fmt.Errorf("ledger_flushers: %d is outside 1..16", c.LedgerFlushers)
	}
	return nil
}
