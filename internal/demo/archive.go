package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Archive demo: one chat_messages month old enough for partition_archive (hot_months 12) to
// move to S3 under `make run`. Its messages are on channels of their own, so the other jobs'
// demo figures (gaps, stats) do not change.
const (
	// OldMonthAge is how many months before the current one the old partition lies.
	OldMonthAge = 14
	// OldMonthMessages is how many messages it holds.
	OldMonthMessages = 5000
	// OldMonthChannelBase: its messages are on channels OldMonthChannelBase+1..+5.
	OldMonthChannelBase = 1000
)

// SeedOldMonth creates chat_messages_YYYY_MM for the month OldMonthAge months before now and
// fills it with OldMonthMessages messages. Repeatable: a month already there is refilled; a
// month the archive manifest already holds (archived, restored) is left as it is, so running
// seed-demo again does not undo the demo's archive. It returns the partition's name and
// whether it (re)filled it.
func SeedOldMonth(ctx context.Context, pool *pgxpool.Pool, now time.Time) (string, bool, error) {
	now = now.UTC()
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -OldMonthAge, 0)
	next := first.AddDate(0, 1, 0)
	name := fmt.Sprintf("chat_messages_%04d_%02d", first.Year(), int(first.Month()))
	// partition_archives exists once job-service has started (its migration); before that
	// nothing has been archived.
	var hasManifest, inManifest bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('partition_archives') IS NOT NULL`).Scan(&hasManifest); err != nil {
		return name, false, fmt.Errorf("look up the archive manifest: %w", err)
	}
	if hasManifest {
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM partition_archives WHERE parent_table = 'chat_messages'
				AND partition_name = $1 AND parent_schema = current_schema())`, name).Scan(&inManifest); err != nil {
			return name, false, fmt.Errorf("look up %s in the archive manifest: %w", name, err)
		}
	}
	if inManifest {
		return name, false, nil
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return name, false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF chat_messages FOR VALUES FROM ('%s') TO ('%s')`,
		ident, first.Format(time.RFC3339), next.Format(time.RFC3339))); err != nil {
		return name, false, fmt.Errorf("create %s: %w", name, err)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`DELETE FROM %s`, ident)); err != nil {
		return name, false, fmt.Errorf("clear %s: %w", name, err)
	}
	span := next.Sub(first).Microseconds() - 1
	if _, err := tx.Exec(ctx, `INSERT INTO chat_messages (id, channel_id, seq, sender_id, body, created_at)
		SELECT 900000000 + g, $1::bigint + 1 + g % 5, g / 5 + 1, 1 + g % 200,
			CASE g % 4 WHEN 0 THEN 'old news #' || g WHEN 1 THEN 'quoted "reply", with commas'
				WHEN 2 THEN E'two\nlines' ELSE '' END,
			$2::timestamptz + (g::bigint * $4::bigint / $3) * interval '1 microsecond'
		FROM generate_series(0, $3::int - 1) g`, OldMonthChannelBase, first, OldMonthMessages, span); err != nil {
		return name, false, fmt.Errorf("fill %s: %w", name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return name, false, fmt.Errorf("commit: %w", err)
	}
	return name, true, nil
}
