package archive

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
)

// testNow is the clock of every test: mid-June 2026. With hot_months 12 for chat_messages the
// cutoff is 2025-06-01, so the 2025-04 and 2025-05 partitions are due and 2025-06 is hot.
var testNow = time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)

type env struct {
	schema *testenv.Schema
	bucket *testenv.Bucket
	cfg    Config
	log    *slog.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	require.NoError(t, ledger.Migrate(context.Background(), s.Pool))
	b := testenv.NewBucket(t)
	return &env{schema: s, bucket: b, log: testenv.Logger(t), cfg: Config{
		Bucket: b.Name, Prefix: "archive",
		Tables: []TableConfig{{"chat_messages", 12}, {"chat_inbox", 6}, {"audit_logs", 3}},
	}}
}

func (e *env) archiver(t testing.TB, pool *pgxpool.Pool, s3 *minio.Client) *Archiver {
	t.Helper()
	if pool == nil {
		pool = e.schema.Pool
	}
	if s3 == nil {
		s3 = e.bucket.Client
	}
	a, err := New(pool, s3, e.cfg, func() time.Time { return testNow }, e.log)
	require.NoError(t, err)
	return a
}

func (e *env) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	_, err := e.schema.Pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}

// month creates table_YYYY_MM for the month of first and fills it with n rows whose text
// has every character CSV must survive: quotes, commas, newlines, backslashes, NULL versus
// empty string, non-ASCII.
func (e *env) month(t testing.TB, table string, first time.Time, n int) string {
	t.Helper()
	name := fmt.Sprintf("%s_%04d_%02d", table, first.Year(), int(first.Month()))
	e.exec(t, fmt.Sprintf(`CREATE TABLE %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`, name, table,
		first.Format(time.RFC3339), first.AddDate(0, 1, 0).Format(time.RFC3339)))
	if n == 0 {
		return name
	}
	span := first.AddDate(0, 1, 0).Sub(first) - time.Second
	switch table {
	case "chat_messages":
		e.exec(t, `INSERT INTO chat_messages (id, channel_id, seq, sender_id, body, created_at)
			SELECT $1::bigint * 1000000 + g, g % 7, g, g % 13,
				CASE g % 6 WHEN 0 THEN '' WHEN 1 THEN 'say "hi", ok' WHEN 2 THEN E'two\nlines\r\n and \\ back'
					WHEN 3 THEN '日本語 ünïcödé ✓' WHEN 4 THEN 'plain ' || g ELSE '\N' END,
				$2::timestamptz + (g * ($4::bigint / $3)) * interval '1 microsecond'
			FROM generate_series(1, $3::int) g`, first.Year()*100+int(first.Month()), first, n, span.Microseconds())
	case "chat_inbox":
		e.exec(t, `INSERT INTO chat_inbox (user_id, channel_id, message_id, created_at, read_at)
			SELECT g % 50, g % 7, g, $1::timestamptz + (g * $3::bigint / $2) * interval '1 microsecond',
				CASE WHEN g % 2 = 0 THEN NULL ELSE $1::timestamptz END
			FROM generate_series(1, $2::int) g`, first, n, span.Microseconds())
	case "audit_logs":
		e.exec(t, `INSERT INTO audit_logs (user_id, action, created_at)
			SELECT CASE WHEN g % 3 = 0 THEN NULL ELSE g END, 'GET /api/' || g,
				$1::timestamptz + (g * $3::bigint / $2) * interval '1 microsecond'
			FROM generate_series(1, $2::int) g`, first, n, span.Microseconds())
	}
	return name
}

// fingerprint is an order-independent digest of a table's rows computed by Postgres itself
// from the values (not from any text this package produced).
func (e *env) fingerprint(t testing.TB, table string) (int64, string) {
	t.Helper()
	var n int64
	var sum string
	err := e.schema.Pool.QueryRow(context.Background(), fmt.Sprintf(
		`SELECT count(*), COALESCE(md5(string_agg(md5(x::text), '' ORDER BY md5(x::text))), '') FROM %s x`, table)).Scan(&n, &sum)
	require.NoError(t, err)
	return n, sum
}

func (e *env) entry(t testing.TB, table, part string) *Entry {
	t.Helper()
	en, err := getEntry(context.Background(), e.schema.Pool, e.schema.Name, table, part)
	require.NoError(t, err)
	return en
}

// tableExists reports whether the test schema holds name, and whether it is attached.
func (e *env) tableExists(t testing.TB, name string) (exists, attached bool) {
	t.Helper()
	err := e.schema.Pool.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL,
		EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass($1))`, name).Scan(&exists, &attached)
	require.NoError(t, err)
	return exists, attached
}

// objects lists the bucket's keys.
func (e *env) objects(t testing.TB) []string {
	t.Helper()
	var keys []string
	for o := range e.bucket.Client.ListObjects(context.Background(), e.bucket.Name, minio.ListObjectsOptions{Recursive: true}) {
		require.NoError(t, o.Err)
		keys = append(keys, o.Key)
	}
	return keys
}

func (e *env) incompleteUploads(t testing.TB) int {
	t.Helper()
	n := 0
	for u := range e.bucket.Client.ListIncompleteUploads(context.Background(), e.bucket.Name, "", true) {
		require.NoError(t, u.Err)
		n++
	}
	return n
}

func month(y int, m time.Month) time.Time { return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC) }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
