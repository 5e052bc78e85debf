package chaos_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/archive"
	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
)

// archiveNow is the archiver's clock in these tests: mid-June 2026, so with hot_months 12
// the 2025-04 partition of chat_messages is due.
var archiveNow = time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)

// archiveWorld is a schema with the chat tables, one due partition of chat_messages, and a
// bucket.
type archiveWorld struct {
	s    *testenv.Schema
	b    *testenv.Bucket
	cfg  archive.Config
	part string
}

func newArchiveWorld(t *testing.T, rows int, withDefault bool) *archiveWorld {
	t.Helper()
	testenv.Integration(t)
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	ctx := context.Background()
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	if !withDefault {
		// DETACH ... CONCURRENTLY needs a parent without a DEFAULT partition.
		_, err := s.Pool.Exec(ctx, `DROP TABLE chat_messages_default`)
		require.NoError(t, err)
	}
	w := &archiveWorld{s: s, b: testenv.NewBucket(t), part: "chat_messages_2025_04"}
	w.cfg = archive.Config{Bucket: w.b.Name, Prefix: "archive", Tables: []archive.TableConfig{{Table: "chat_messages", HotMonths: 12}}}
	_, err := s.Pool.Exec(ctx, `CREATE TABLE chat_messages_2025_04 PARTITION OF chat_messages
		FOR VALUES FROM ('2025-04-01T00:00:00Z') TO ('2025-05-01T00:00:00Z')`)
	require.NoError(t, err)
	_, err = s.Pool.Exec(ctx, `INSERT INTO chat_messages (id, channel_id, seq, sender_id, body, created_at)
		SELECT g, g % 7, g, g % 13, CASE g % 4 WHEN 0 THEN '' WHEN 1 THEN E'say "hi",\n ok' WHEN 2 THEN '日本語 ✓' ELSE 'm ' || g END,
			'2025-04-01T00:00:00Z'::timestamptz + g * interval '1 second'
		FROM generate_series(1, $1::int) g`, rows)
	require.NoError(t, err)
	return w
}

// fingerprint is an order-independent digest of table's rows, computed by Postgres.
func (w *archiveWorld) fingerprint(t *testing.T, table string) (int64, string) {
	t.Helper()
	var n int64
	var sum string
	require.NoError(t, w.s.Pool.QueryRow(context.Background(), fmt.Sprintf(
		`SELECT count(*), COALESCE(md5(string_agg(md5(x::text), '' ORDER BY md5(x::text))), '') FROM %s x`, table)).Scan(&n, &sum))
	return n, sum
}

// entry is the manifest row of the partition, read directly (never through a proxy).
func (w *archiveWorld) entry(t *testing.T) *archive.Entry {
	t.Helper()
	es, err := archive.List(context.Background(), w.s.Pool, archive.ListFilter{Table: "chat_messages"})
	require.NoError(t, err)
	require.Len(t, es, 1)
	return es[0]
}

// partitionThere reports whether the partition table exists and is attached.
func (w *archiveWorld) partitionThere(t *testing.T) (exists, attached bool) {
	t.Helper()
	require.NoError(t, w.s.Pool.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL,
		EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass($1))`, w.part).Scan(&exists, &attached))
	return exists, attached
}

func (w *archiveWorld) objects(t *testing.T) []string {
	t.Helper()
	var keys []string
	for o := range w.b.Client.ListObjects(context.Background(), w.b.Name, minio.ListObjectsOptions{Recursive: true}) {
		require.NoError(t, o.Err)
		keys = append(keys, o.Key)
	}
	return keys
}

func (w *archiveWorld) archiver(t *testing.T, pool *pgxpool.Pool) *archive.Archiver {
	t.Helper()
	a, err := archive.New(pool, w.b.Client, w.cfg, func() time.Time { return archiveNow }, testenv.Logger(t))
	require.NoError(t, err)
	return a
}

// Postgres goes away from the archiver (a loopback proxy stops carrying its
// connection's bytes, both ways) at each step of a partition's move: in the middle of the
// export stream, and right after export, verify and detach were recorded (and, with DETACH
// CONCURRENTLY, between the detach and its record). The run ends as the node would end it,
// by cancelling its context (heartbeat loss stops a run within 2/3 of stale_after; here 3 s).
// While Postgres is unreachable the partition is never dropped unless its export was verified;
// healed, the next runs resume from the manifest's last recorded step and finish, with one
// object (the one the manifest named from the start, or, when the export is started again,
// the key that export was given) whose restore gives back the same rows.
func TestArchiveSurvivesPostgresOutageAtEachStep(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		step        string
		withDefault bool
	}{
		{archive.StepExporting, true},
		{archive.StepExported, true},
		{archive.StepVerified, true},
		{archive.StepDetached, true},
		{archive.StepVerified, false},
		{archive.StepDetachedUnrecorded, false},
	} {
		name := tc.step
		if !tc.withDefault {
			name += "/concurrently"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newArchiveWorld(t, 20000, tc.withDefault)
			n0, sum0 := w.fingerprint(t, w.part)
			u, err := url.Parse(w.s.DSN)
			require.NoError(t, err)
			proxy, err := chaos.NewProxy(u.Host)
			require.NoError(t, err)
			t.Cleanup(proxy.Close)
			u.Host = proxy.Addr()
			pool, err := pgxpool.New(context.Background(), u.String())
			require.NoError(t, err)
			t.Cleanup(pool.Close)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a := w.archiver(t, pool)
			var cutAt time.Time
			var firstKey string
			a.SetHook(func(_ context.Context, step string, e *archive.Entry) {
				if step != tc.step || !cutAt.IsZero() {
					return
				}
				firstKey = e.ObjectKey
				proxy.Cut()
				cutAt = time.Now()
				time.AfterFunc(3*time.Second, cancel)
			})
			_, err = a.Run(ctx, archive.Options{})
			require.Error(t, err, "the run cannot finish without Postgres")
			require.False(t, cutAt.IsZero(), "the outage happened at %s", tc.step)
			ended := time.Since(cutAt)

			// Postgres still unreachable for the archiver: what did it leave?
			left := w.entry(t)
			exists, attached := w.partitionThere(t)
			leftExists, leftAttached := exists, attached
			switch left.State {
			case archive.StateExporting, archive.StateExported:
				require.True(t, exists && attached, "state %s: the partition must still be in place", left.State)
			case archive.StateVerified:
				require.True(t, exists, "verified, not yet detached: the partition must exist")
			case archive.StateDetached:
				require.True(t, exists, "detached, not yet dropped: the table must exist")
				require.False(t, attached)
			default:
				t.Fatalf("outage at %s left state %s", tc.step, left.State)
			}
			require.Equal(t, firstKey, left.ObjectKey)

			proxy.Heal()
			healed := time.Now()
			// The job's retries: each run resumes from the manifest.
			var res archive.Result
			runs := 0
			for runs = 1; runs <= 3; runs++ {
				res, err = w.archiver(t, pool).Run(context.Background(), archive.Options{})
				if err == nil {
					break
				}
				t.Logf("resume run %d after the heal: %v", runs, err)
			}
			require.NoError(t, err)
			require.NotEmpty(t, res.Items)
			en := w.entry(t)
			require.Equal(t, archive.StateDropped, en.State)
			if left.State != archive.StateExporting {
				require.Equal(t, firstKey, en.ObjectKey, "an exported object is never exported again")
			}
			require.Equal(t, []string{en.ObjectKey, en.ObjectKey + ".manifest.json"}, w.objects(t))
			exists, _ = w.partitionThere(t)
			require.False(t, exists)
			uploads := 0
			for u := range w.b.Client.ListIncompleteUploads(context.Background(), w.b.Name, "", true) {
				require.NoError(t, u.Err)
				uploads++
			}
			require.Zero(t, uploads, "no multipart upload left behind")

			_, err = archive.Restore(context.Background(), w.archiver(t, w.s.Pool), "chat_messages", w.part, archive.RestoreAttach, "")
			require.NoError(t, err)
			n, sum := w.fingerprint(t, w.part)
			require.Equal(t, n0, n)
			require.Equal(t, sum0, sum)
			t.Logf("outage at %s: run ended %s after the cut, left %s (partition exists=%v attached=%v); healed, finished in %d run(s), %s; exports %d; restore: %d rows, same checksum",
				tc.step, ended.Round(time.Millisecond), left.State, leftExists, leftAttached, runs, time.Since(healed).Round(time.Millisecond), en.Attempts, n)
		})
	}
}

// Kill -9 of a whole node (testnode, the production wiring) while its
// partition_archive run is moving a partition; another node takes the run over (the ticker's
// repair pass republishes it once the heartbeat is stale) and finishes the move from the
// manifest: one object, the partition dropped only after a verified export, restorable.
func TestArchiveNodeKilledMidMoveIsFinishedByAnother(t *testing.T) {
	t.Parallel()
	sfx := testenv.Suffix()
	bucket := testenv.NewBucket(t)
	w := newWorld(t, "", nil, chaos.Settings{Ticker: true,
		Jobs: `partition_archive: {max_attempts: 3, timeout: 5m}`,
		Extra: fmt.Sprintf(`s3: {endpoint: %q, access_key: %q, secret_key: %q, use_ssl: false, region: us-east-1, path_style: true}
handlers:
  partition_archive: {bucket: %s, prefix: archive, tables: [{table: chat_messages, hot_months: 12}], part_size_mb: 5, first_run_dry_run: false}
`, testenv.S3Endpoint(), testenv.S3AccessKey(), testenv.S3SecretKey(), bucket.Name)})
	applyChatSchema(t, w.pool)
	ctx := context.Background()
	const part = "chat_messages_2025_04"
	_, err := w.pool.Exec(ctx, `CREATE TABLE chat_messages_2025_04 PARTITION OF chat_messages
		FOR VALUES FROM ('2025-04-01T00:00:00Z') TO ('2025-05-01T00:00:00Z')`)
	require.NoError(t, err)
	// Big enough that the move takes seconds, so the kill lands in the middle of it.
	_, err = w.pool.Exec(ctx, `INSERT INTO chat_messages (id, channel_id, seq, sender_id, body, created_at)
		SELECT g, g % 7, g, g % 13, repeat(md5(g::text), 4), '2025-04-01T00:00:00Z'::timestamptz + g * interval '5 seconds'
		FROM generate_series(1, 400000) g`)
	require.NoError(t, err)
	aw := &archiveWorld{s: &testenv.Schema{Pool: w.pool}, b: bucket, part: part}
	n0, sum0 := aw.fingerprint(t, part)

	a := w.c.Start("a", nil)
	w.ready(1)
	key := "manual:archive-" + sfx
	w.publish(forced("partition_archive", key, 1, `{}`)...)
	// Kill a as soon as the manifest shows the move under way.
	var at archive.State
	testenv.Eventually(t, 60*time.Second, func() bool {
		es, err := archive.List(ctx, w.pool, archive.ListFilter{Table: "chat_messages"})
		if err != nil || len(es) == 0 {
			return false
		}
		at = es[0].State
		return true
	}, "a to start moving the partition")
	a.Kill()
	killed := time.Now()
	left := aw.entry(t)
	exists, attached := aw.partitionThere(t)
	t.Logf("a killed with the manifest at %s (saw %s); partition exists=%v attached=%v", left.State, at, exists, attached)
	require.NotEqual(t, archive.StateDropped, left.State, "the kill landed before the move ended")
	if left.State == archive.StateExporting || left.State == archive.StateExported {
		require.True(t, exists && attached, "unverified: the partition must be in place")
	}
	firstKey := left.ObjectKey

	w.c.Start("b", nil)
	rs := w.waitDone("partition_archive", key, 1, 3*time.Minute)
	require.Equal(t, "succeeded", rs[0].Status, "%v", rs[0])
	en := aw.entry(t)
	require.Equal(t, archive.StateDropped, en.State)
	if left.State != archive.StateExporting { // an export started again gets a key of its own
		require.Equal(t, firstKey, en.ObjectKey, "an exported object is never exported again")
	}
	require.Equal(t, []string{en.ObjectKey, en.ObjectKey + ".manifest.json"}, aw.objects(t))
	uploads := 0
	for u := range bucket.Client.ListIncompleteUploads(ctx, bucket.Name, "", true) {
		require.NoError(t, u.Err)
		uploads++
	}
	require.Zero(t, uploads, "the killed node's multipart upload was cleaned up")
	exists, _ = aw.partitionThere(t)
	require.False(t, exists)
	finished := time.Since(killed)

	aw.cfg = archive.Config{Bucket: bucket.Name, Prefix: "archive", Tables: []archive.TableConfig{{Table: "chat_messages", HotMonths: 12}}}
	_, err = archive.Restore(ctx, aw.archiver(t, w.pool), "chat_messages", part, archive.RestoreAttach, "")
	require.NoError(t, err)
	n, sum := aw.fingerprint(t, part)
	require.Equal(t, n0, n)
	require.Equal(t, sum0, sum)
	t.Logf("killed at %s; b finished the move %s after the kill; run %v; exports %d; %d rows restored, same checksum",
		left.State, finished.Round(time.Millisecond), rs[0], en.Attempts, n)
}
