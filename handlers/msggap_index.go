package handlers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// timeIndexSQL finds an index of the table whose first key column is the time column. On a
// partitioned table it finds the partitioned index, which Postgres creates on every partition,
// present and future. Any access method counts: btree and BRIN both turn the window's range
// into a scan of the window's rows instead of the whole month's partition.
const timeIndexSQL = `
SELECT i.indexrelid::regclass::text
FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = to_regclass($1) AND a.attname = $2
ORDER BY 1 LIMIT 1`

// timeIndex returns the name of the index msg_gap_check relies on, or "" when the table
// has none.
func timeIndex(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, table, column string) (string, error) {
	rows, err := q.Query(ctx, timeIndexSQL, pgx.Identifier(strings.Split(table, ".")).Sanitize(), column)
	if err != nil {
		return "", fmt.Errorf("look for an index on %s(%s): %w", table, column, err)
	}
	name, err := pgx.CollectOneRow(rows, pgx.RowTo[string])
	if err == pgx.ErrNoRows {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look for an index on %s(%s): %w", table, column, err)
	}
	return name, nil
}

// missingIndexWarning says what the platform must create. Without it every run reads the
// whole current month's partition (its primary key leads with id, not the time).
func missingIndexWarning(table, column string) string {
	return fmt.Sprintf("no index leads with %s on %s: every run reads the whole partition; create one: "+
		"CREATE INDEX ON %s (%s)", column, table, pgx.Identifier(strings.Split(table, ".")).Sanitize(),
		pgx.Identifier{column}.Sanitize())
}

// msgGapSettings are the settings the query runs under, for its transaction only. work_mem
// lets the window's rows sort in memory. Bitmap scans are off because the boundary probe
// (the predecessor of each channel's first message in the window) is a LIMIT 1 walk down the
// (channel, seq) index: with a bitmap scan Postgres fetches every earlier message of the
// channel in the partition, then sorts, and at production volume (hundreds of messages per
// channel per month, tens of thousands of channels per hour) that alone read gigabytes per
// run (BENCHMARKS.md).
func msgGapSettings(cfg MsgGapConfig) [][2]string {
	return [][2]string{{"work_mem", cfg.WorkMem}, {"enable_bitmapscan", "off"}}
}

// MsgGapQueryForExplain returns the statement a run at now with cfg executes, its arguments
// and the settings it runs under, so benchmarks can EXPLAIN exactly what the job runs.
func MsgGapQueryForExplain(cfg MsgGapConfig, now time.Time) (query string, args []any, settings [][2]string) {
	cfg = cfg.WithDefaults()
	h := &MsgGap{cfg: cfg}
	now = now.UTC()
	from := now.Add(-cfg.Window)
	return h.query(), []any{from, now, from.Add(-cfg.BoundaryLookback), now.Add(-cfg.Settle), cfg.MaxChannels, cfg.MaxRanges}, msgGapSettings(cfg)
}
