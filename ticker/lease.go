package ticker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Lease is the cluster-wide ticker leadership: a Postgres advisory lock held on one dedicated
// connection. Postgres releases it when that connection ends, so a node that dies or loses
// the database steps down without anyone having to notice; the ledger's unique run key fences
// the short window where an old leader has not noticed yet.
type Lease struct {
	pool *pgxpool.Pool
	key  int64

	mu   sync.Mutex
	conn *pgxpool.Conn
}

// NewLease returns a lease on the advisory lock key.
func NewLease(pool *pgxpool.Pool, key int64) *Lease { return &Lease{pool: pool, key: key} }

// TryAcquire takes the lease if it is free. It reports whether this node holds it.
func (l *Lease) TryAcquire(ctx context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		return true, nil
	}
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("lease: acquire connection: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, l.key).Scan(&ok); err != nil {
		conn.Release()
		return false, fmt.Errorf("lease: try lock: %w", err)
	}
	if !ok {
		conn.Release()
		return false, nil
	}
	l.conn = conn
	return true, nil
}

// ErrLeaseLost means the connection holding the lease failed: the lock is gone with it.
var ErrLeaseLost = errors.New("ticker lease lost")

// Check verifies the lease's connection still works. On failure it drops the connection (and
// with it the lock) and returns ErrLeaseLost.
func (l *Lease) Check(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return ErrLeaseLost
	}
	var held bool
	err := l.conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
		WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
		  AND ((classid::bigint << 32) | objid::bigint) = $1)`, l.key).Scan(&held)
	if err != nil || !held {
		l.dropLocked()
		if err == nil {
			err = errors.New("lock not held by this session")
		}
		return fmt.Errorf("%w: %v", ErrLeaseLost, err)
	}
	return nil
}

// Release gives the lease up. Safe to call when not held.
func (l *Lease) Release(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return
	}
	if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, l.key); err != nil {
		l.dropLocked()
		return
	}
	l.conn.Release()
	l.conn = nil
}

// dropLocked closes the connection rather than returning it to the pool: a session that may
// still hold the lock must not be reused by someone else.
func (l *Lease) dropLocked() {
	if l.conn == nil {
		return
	}
	_ = l.conn.Conn().Close(context.Background())
	l.conn.Release()
	l.conn = nil
}
