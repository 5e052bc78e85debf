// Production-volume data for the per-job benchmarks. Not a package doc.

package demo

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Volume is the shape of a production-sized platform. The figures are the
// defaults of ProductionVolume; benchmarks scale them down while iterating.
type Volume struct {
	Messages int64 // chat_messages in the current month's partition
	Channels int64 // channels the messages are spread over
	// AuditPerSecond is the API call rate audit_logs records for a whole month.
	AuditPerSecond int64
}

// ProductionVolume is the platform at production size: 20 million messages across 50,000 channels; a
// month of audit logs at 20 calls per second (about 52 million rows).
func ProductionVolume() Volume {
	return Volume{Messages: 20_000_000, Channels: 50_000, AuditPerSecond: 20}
}

// RequireLocal refuses a pool that does not talk to a loopback address: the volume seeders
// write tens of millions of rows and must never reach a shared or production database.
func RequireLocal(pool *pgxpool.Pool) error {
	host := pool.Config().ConnConfig.Host
	if host == "localhost" || len(host) > 0 && host[0] == '/' {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("volume seed refuses database host %q: only loopback (the local stack) is allowed", host)
}

// MonthStart is the first instant of t's UTC month.
func MonthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// volumeBatch bounds one INSERT: the seed can be cancelled between batches, and no single
// transaction holds tens of millions of rows of WAL.
const volumeBatch = 2_000_000

// SeedMessageVolume fills chat_messages (deploy/local/chat_schema.sql, applied in the pool's
// search_path) with v.Messages rows in end's month, from the month's start up to end, in time
// order as a live platform writes them: message i goes to channel i mod Channels with the
// channel's next seq. One message in every gapEvery channels' 10th seq is left out so the
// gap check has gaps to find (0: none). Set-based: generate_series, batchwise.
func SeedMessageVolume(ctx context.Context, pool *pgxpool.Pool, v Volume, end time.Time, gapEvery int64) error {
	if err := RequireLocal(pool); err != nil {
		return err
	}
	if v.Messages < 1 || v.Channels < 1 {
		return fmt.Errorf("volume: messages %d and channels %d must be positive", v.Messages, v.Channels)
	}
	start := MonthStart(end)
	if err := monthPartition(ctx, pool, "chat_messages", start); err != nil {
		return err
	}
	step := end.Sub(start) / time.Duration(v.Messages)
	for from := int64(0); from < v.Messages; from += volumeBatch {
		to := min(from+volumeBatch, v.Messages) - 1
		_, err := pool.Exec(ctx, `INSERT INTO chat_messages (id, channel_id, seq, sender_id, created_at)
			SELECT i + 1, i % $3 + 1, i / $3 + 1, (i * 7919) % 2000000 + 1,
				$4::timestamptz + i * ($5::bigint * interval '1 microsecond')
			FROM generate_series($1::bigint, $2::bigint) i
			WHERE $6::bigint = 0 OR NOT ((i % $3 + 1) % $6 = 0 AND i / $3 + 1 = 10)`,
			from, to, v.Channels, start, step.Microseconds(), gapEvery)
		if err != nil {
			return fmt.Errorf("insert messages %d..%d: %w", from, to, err)
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE chat_messages`); err != nil {
		return fmt.Errorf("analyze chat_messages: %w", err)
	}
	return nil
}

// SeedAuditVolume fills audit_logs with a month up to end at v.AuditPerSecond calls per
// second, spread evenly, batchwise.
func SeedAuditVolume(ctx context.Context, pool *pgxpool.Pool, v Volume, end time.Time) (int64, error) {
	if err := RequireLocal(pool); err != nil {
		return 0, err
	}
	start := end.AddDate(0, -1, 0)
	for m := MonthStart(start); m.Before(end); m = m.AddDate(0, 1, 0) {
		if err := monthPartition(ctx, pool, "audit_logs", m); err != nil {
			return 0, err
		}
	}
	total := int64(end.Sub(start)/time.Second) * v.AuditPerSecond
	step := end.Sub(start) / time.Duration(total)
	for from := int64(0); from < total; from += volumeBatch {
		to := min(from+volumeBatch, total) - 1
		_, err := pool.Exec(ctx, `INSERT INTO audit_logs (user_id, action, created_at)
			SELECT (i * 7919) % 2000000 + 1, (ARRAY['GET /api/messages','POST /api/messages','GET /api/channels','PUT /api/read'])[i % 4 + 1],
				$3::timestamptz + i * ($4::bigint * interval '1 microsecond')
			FROM generate_series($1::bigint, $2::bigint) i`, from, to, start, step.Microseconds())
		if err != nil {
			return 0, fmt.Errorf("insert audit logs %d..%d: %w", from, to, err)
		}
	}
	return total, nil
}

// monthPartition creates table's partition for the month starting at m (name table_YYYY_MM,
// as pg_partition names them) unless it exists.
func monthPartition(ctx context.Context, pool *pgxpool.Pool, table string, m time.Time) error {
	name := fmt.Sprintf("%s_%04d_%02d", table, m.Year(), int(m.Month()))
	// Partition bounds cannot be parameters; they are formatted timestamps, not input.
	_, err := pool.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`,
		pgx.Identifier{name}.Sanitize(), pgx.Identifier{table}.Sanitize(), m.Format(time.RFC3339), m.AddDate(0, 1, 0).Format(time.RFC3339)))
	if err != nil {
		return fmt.Errorf("create partition %s: %w", name, err)
	}
	return nil
}
