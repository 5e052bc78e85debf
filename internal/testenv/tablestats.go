package testenv

import (
	"context"
	"testing"
	"time"
)

// TableUpdates are a table's update counters in pg_stat_user_tables: all updates, and the
// heap-only (HOT) ones, which wrote no index entry.
type TableUpdates struct {
	Updates, HOT int64
}

// HOTPercentSince is the share of the updates made since from that were HOT, in percent
// (100 when there were none).
func (u TableUpdates) HOTPercentSince(from TableUpdates) float64 {
	n := u.Updates - from.Updates
	if n <= 0 {
		return 100
	}
	return 100 * float64(u.HOT-from.HOT) / float64(n)
}

// TableUpdates reads the update counters of table in s once they count at least atLeast
// updates. A backend publishes its counters when it goes idle, at most once a second (and at
// its exit), so the counters of other connections are polled for, up to 30 s.
func (s *Schema) TableUpdates(t testing.TB, table string, atLeast int64) TableUpdates {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := s.Pool.Acquire(ctx)
	if err != nil {
		t.Fatalf("testenv: read statistics of %s: %v", table, err)
	}
	defer conn.Release()
	var u TableUpdates
	Eventually(t, 30*time.Second, func() bool {
		// This connection's own counters go out at its next idle moment; the read after sees them.
		if _, err := conn.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatalf("testenv: flush table statistics: %v", err)
		}
		err := conn.QueryRow(ctx, `SELECT coalesce(sum(n_tup_upd), 0)::bigint, coalesce(sum(n_tup_hot_upd), 0)::bigint
			FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2`, s.Name, table).Scan(&u.Updates, &u.HOT)
		if err != nil {
			t.Fatalf("testenv: read statistics of %s: %v", table, err)
		}
		return u.Updates >= atLeast
	}, "pg_stat_user_tables to count %d updates of %s.%s", atLeast, s.Name, table)
	return u
}
