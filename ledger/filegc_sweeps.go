package ledger

import (
	"context"
	"fmt"
)

// FileGCSweep is what the latest scheduled file_gc runs of one shard say about its backlog.
type FileGCSweep struct {
	Shard int
	// Backlog is the collectable files (and tombstones) the shard's latest run left behind.
	Backlog int64
	// CappedInARow is how many of the shard's latest scheduled runs, newest first, stopped at
	// max_deletes: with the daily schedule, the days in a row the sweep could not keep up.
	CappedInARow int
}

// fileGCSweepRuns bounds the runs read: two weeks of three shards and their retries.
const fileGCSweepRuns = 64

// FileGCSweeps reads the latest scheduled, finished runs of job (file_gc) per shard: a short
// index scan of job_runs (job, created_at DESC), cheap enough for every metrics scrape.
func (l *Ledger) FileGCSweeps(ctx context.Context, job string) ([]FileGCSweep, error) {
	rows, err := l.db.Query(ctx, `SELECT shard_index, coalesce((result->>'capped')::bool, false),
			coalesce((result->>'backlog')::bigint, 0)
		FROM (SELECT shard_index, result, created_at FROM job_runs
			WHERE job = $1 AND trigger = 'schedule' AND status IN ('succeeded', 'failed') AND result IS NOT NULL
			ORDER BY created_at DESC LIMIT $2) r
		WHERE NOT coalesce((result->>'dry_run')::bool, false)
		ORDER BY shard_index, created_at DESC`, job, fileGCSweepRuns)
	if err != nil {
		return nil, fmt.Errorf("read %s runs: %w", job, err)
	}
	defer rows.Close()
	var out []FileGCSweep
	streak := true // still counting the newest capped runs of the current shard
	for rows.Next() {
		var shard int
		var capped bool
		var backlog int64
		if err := rows.Scan(&shard, &capped, &backlog); err != nil {
			return nil, fmt.Errorf("read %s runs: %w", job, err)
		}
		if len(out) == 0 || out[len(out)-1].Shard != shard {
			out = append(out, FileGCSweep{Shard: shard, Backlog: backlog})
			streak = true
		}
		cur := &out[len(out)-1]
		if streak && capped {
			cur.CappedInARow++
		} else {
			streak = false
		}
	}
	return out, rows.Err()
}
