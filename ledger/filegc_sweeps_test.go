package ledger_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/ledger"
)

// TestFileGCSweepsCountsCappedRunsInARow: per shard, the newest scheduled runs that stopped
// at max_deletes, and the latest run's backlog; manual and dry runs do not count.
func TestFileGCSweepsCountsCappedRunsInARow(t *testing.T) {
	l, s := newLedger(t)
	ctx := context.Background()
	day0 := time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)
	add := func(day, shard int, trigger string, capped, dry bool, backlog int) {
		_, err := s.Pool.Exec(ctx, `INSERT INTO job_runs (job, run_key, shard_index, shard_total, trigger, scheduled_at,
			status, result, created_at) VALUES ('file_gc', $1, $2, 2, $3, $4, 'succeeded', $5, $4)`,
			fmt.Sprintf("%s:%d", trigger, day), shard, trigger, day0.AddDate(0, 0, day),
			fmt.Sprintf(`{"capped": %t, "dry_run": %t, "backlog": %d}`, capped, dry, backlog))
		require.NoError(t, err)
	}
	// Shard 0: capped, not, capped, capped (newest): 2 in a row. A newer dry run and a newer
	// manual run do not break the streak.
	add(0, 0, "schedule", true, false, 10)
	add(1, 0, "schedule", false, false, 0)
	add(2, 0, "schedule", true, false, 30)
	add(3, 0, "schedule", true, false, 40)
	add(4, 0, "manual", false, false, 0)
	add(5, 0, "schedule", false, true, 0)
	// Shard 1: never capped.
	add(3, 1, "schedule", false, false, 0)
	got, err := l.FileGCSweeps(ctx, "file_gc")
	require.NoError(t, err)
	require.Equal(t, []ledger.FileGCSweep{{Shard: 0, Backlog: 40, CappedInARow: 2}, {Shard: 1}}, got)
}
