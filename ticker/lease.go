package ticker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Lease is the cluster-wide ticker leadership: a Postgres advisory lock held on one dedicated
// connection. Postgres releases it when that session ends, and the session is made to end
// soon after its node stops answering: it sets idle_session_timeout to the lease's timeout
// (the server closes a session that stops talking: a frozen process, a partition, a dead
// host), its socket has TCP keepalives and TCP_USER_TIMEOUT (unacknowledged data fails the
// connection), and the ticker pings it every interval, well within the timeout. A leader
// that wakes up after the timeout finds its session gone at its next Check and steps down;
// the ledger's unique run key fences what it was in the middle of.
type Lease struct {
	cfg     pgx.ConnConfig
	key     int64
	timeout time.Duration

	mu       sync.Mutex
	conn     *pgx.Conn
	held     bool
	lastOK   time.Time // the last time the session answered while held (local monotonic clock)
	lastPing time.Time
}

// NewLease returns a lease on the advisory lock key, on its own session to the pool's
// database. timeout bounds how long the lock outlives a node that stopped answering.
func NewLease(pool *pgxpool.Pool, key int64, timeout time.Duration) *Lease {
	cfg := pool.Config().ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	ms := strconv.FormatInt(timeout.Milliseconds(), 10)
	cfg.RuntimeParams["idle_session_timeout"] = ms
	cfg.RuntimeParams["idle_in_transaction_session_timeout"] = ms
	cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt((timeout / 3).Milliseconds(), 10)
	cfg.RuntimeParams["application_name"] = "job-service ticker lease"
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > timeout/3 {
		cfg.ConnectTimeout = timeout / 3
	}
	dialer := &net.Dialer{KeepAlive: timeout / 6, Control: userTimeout(timeout / 3)}
	cfg.DialFunc = dialer.DialContext
	return &Lease{cfg: *cfg, key: key, timeout: timeout}
}

// connect opens the lease's session if there is none. Callers hold mu.
func (l *Lease) connect(ctx context.Context) error {
	if l.conn != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout/3)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, &l.cfg)
	if err != nil {
		return fmt.Errorf("lease: connect: %w", err)
	}
	l.conn = conn
	return nil
}

// TryAcquire takes the lease if it is free. It reports whether this node holds it. A node
// that does not hold it keeps its session open (and pinged by these calls) for the next try.
func (l *Lease) TryAcquire(ctx context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held {
		return true, nil
	}
	if err := l.connect(ctx); err != nil {
		return false, err
	}
	qctx, cancel := context.WithTimeout(ctx, l.timeout/3)
	defer cancel()
	sent := time.Now()
	var ok bool
	if err := l.conn.QueryRow(qctx, `SELECT pg_try_advisory_lock($1)`, l.key).Scan(&ok); err != nil {
		l.dropLocked()
		return false, fmt.Errorf("lease: try lock: %w", err)
	}
	if ok {
		l.held, l.lastOK, l.lastPing = true, sent, sent
	}
	return ok, nil
}

// ErrLeaseLost means the session holding the lease failed or no longer holds the lock.
var ErrLeaseLost = errors.New("ticker lease lost")

// Check verifies, within a third of the lease timeout, that the session still holds the lock.
// On failure it closes the session (and with it any lock) and returns ErrLeaseLost.
func (l *Lease) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checkLocked(ctx)
}

func (l *Lease) checkLocked(ctx context.Context) error {
	if !l.held || l.conn == nil {
		return ErrLeaseLost
	}
	sent := time.Now()
	if sent.Sub(l.lastOK) >= l.timeout {
		// This process did not run for the whole timeout (stopped, starved): the server has
		// closed the session by now, whatever the socket says.
		l.dropLocked()
		return fmt.Errorf("%w: no answer from the lease session for %s", ErrLeaseLost, sent.Sub(l.lastOK).Round(time.Millisecond))
	}
	qctx, cancel := context.WithTimeout(ctx, l.timeout/3)
	defer cancel()
	var held bool
	err := l.conn.QueryRow(qctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
		WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
		  AND ((classid::bigint << 32) | objid::bigint) = $1)`, l.key).Scan(&held)
	if err != nil || !held {
		l.dropLocked()
		if err == nil {
			err = errors.New("lock not held by this session")
		}
		return fmt.Errorf("%w: %v", ErrLeaseLost, err)
	}
	l.lastOK, l.lastPing = sent, sent
	return nil
}

// Fresh checks the lease again unless it answered within the last half timeout. The ticker
// calls it right before each publish, so a leader that froze between deciding and sending
// finds out it lost the lease instead of publishing what the new leader already did.
func (l *Lease) Fresh(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held && l.conn != nil && time.Since(l.lastOK) < l.timeout/2 {
		return nil
	}
	return l.checkLocked(ctx)
}

// Release gives the lease up. Safe to call when not held.
func (l *Lease) Release(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return
	}
	if l.held {
		ctx, cancel := context.WithTimeout(ctx, l.timeout/3)
		defer cancel()
		if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, l.key); err != nil {
			l.dropLocked()
			return
		}
	}
	l.dropLocked()
}

// dropLocked closes the session, which ends any lock it held.
func (l *Lease) dropLocked() {
	l.held = false
	if l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.conn.Close(ctx)
	l.conn = nil
}
