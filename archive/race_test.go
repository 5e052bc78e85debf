package archive

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"
)

// flakyStore is the real S3 client whose reads fail while down is set: S3 unreachable for
// the verify step, without stopping a shared server.
type flakyStore struct {
	*minio.Client
	down atomic.Bool
}

func (f *flakyStore) GetObject(ctx context.Context, bucket, key string, opts minio.GetObjectOptions) (*minio.Object, error) {
	if f.down.Load() {
		return nil, errors.New("s3 unreachable (test)")
	}
	return f.Client.GetObject(ctx, bucket, key, opts)
}

// header is the CSV header line of the archived object of part.
func (e *env) header(t *testing.T, table, part string) string {
	t.Helper()
	o, err := e.bucket.Client.GetObject(context.Background(), e.bucket.Name, e.entry(t, table, part).ObjectKey, minio.GetObjectOptions{})
	require.NoError(t, err)
	defer o.Close()
	gz, err := gzip.NewReader(o)
	require.NoError(t, err)
	b, err := io.ReadAll(gz)
	require.NoError(t, err)
	line, _, _ := strings.Cut(string(b), "\n")
	return line
}

// TestArchiveSchemaDriftExportsAgain: a column added to the table while a move is stalled
// (here S3 unreachable between export and verify) is in the object before the partition is
// dropped, and the restore gives its values back.
func TestArchiveSchemaDriftExportsAgain(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	apr := e.month(t, "chat_messages", month(2025, 4), 600)
	s3 := &flakyStore{Client: e.bucket.Client}
	a, err := New(e.schema.Pool, s3, e.cfg, func() time.Time { return testNow }, e.log)
	require.NoError(t, err)
	a.SetHook(func(_ context.Context, step string, _ *Entry) {
		if step == StepExported {
			s3.down.Store(true)
		}
	})
	_, err = a.Run(ctx, Options{})
	require.ErrorContains(t, err, "s3 unreachable")
	require.Equal(t, StateExported, e.entry(t, "chat_messages", apr).State)

	// The schema moves on while the archive waits.
	e.exec(t, `ALTER TABLE chat_messages ADD COLUMN edited_at timestamptz`)
	e.exec(t, `UPDATE `+apr+` SET edited_at = created_at + interval '90 minutes' WHERE id % 3 = 0`)
	e.exec(t, `ALTER TABLE chat_messages ALTER COLUMN sender_id TYPE numeric(20)`)
	n0, sum0 := e.fingerprint(t, apr)

	s3.down.Store(false)
	a.SetHook(nil)
	_, err = a.Run(ctx, Options{})
	require.NoError(t, err)
	en := e.entry(t, "chat_messages", apr)
	require.Equal(t, StateDropped, en.State)
	require.Equal(t, "id,channel_id,seq,sender_id,body,created_at,edited_at", e.header(t, "chat_messages", apr))
	require.Contains(t, en.Columns, column{"edited_at", "timestamp with time zone"})
	require.Contains(t, en.Columns, column{"sender_id", "numeric(20,0)"})

	_, err = Restore(ctx, e.archiver(t, nil, nil), "chat_messages", apr, RestoreAttach, "")
	require.NoError(t, err)
	n, sum := e.fingerprint(t, apr)
	require.Equal(t, n0, n)
	require.Equal(t, sum0, sum, "edited_at came back")
}

// pauseAt returns a hook that, the first time step is reached, says so on paused and waits
// for resume to close (or the test's deadline).
func pauseAt(step string, paused chan<- struct{}, resume <-chan struct{}) Hook {
	var once atomic.Bool
	return func(_ context.Context, s string, _ *Entry) {
		if s != step || !once.CompareAndSwap(false, true) {
			return
		}
		close(paused)
		select {
		case <-resume:
		case <-time.After(time.Minute):
		}
	}
}

// twoMovers runs a first mover until it pauses at step, then a second run (another run, or a
// resend of the same run, with its run id, when sameRun): the second must not move the
// partition the first holds; the first then finishes, into the one object, and the archive
// restores to the same rows.
func twoMovers(t *testing.T, step string, sameRun bool) {
	e := newEnv(t)
	e.cfg.LockTimeout, e.cfg.LockRetries = 50*time.Millisecond, 1
	ctx := context.Background()
	apr := e.month(t, "chat_messages", month(2025, 4), 3000)
	n0, sum0 := e.fingerprint(t, apr)

	paused, resume := make(chan struct{}), make(chan struct{})
	first := e.archiver(t, nil, nil)
	first.SetHook(pauseAt(step, paused, resume))
	var firstRun, otherRun int64
	for _, r := range []*int64{&firstRun, &otherRun} {
		require.NoError(t, e.schema.Pool.QueryRow(ctx, `INSERT INTO job_runs (job, run_key, trigger, scheduled_at, status)
			VALUES ('pg_archive', gen_random_uuid()::text, 'schedule', now(), 'running') RETURNING id`).Scan(r))
	}
	done := make(chan error, 1)
	go func() {
		_, err := first.Run(ctx, Options{RunID: firstRun})
		done <- err
	}()
	select {
	case <-paused:
	case err := <-done:
		t.Fatalf("the first mover ended before %s: %v", step, err)
	}
	before := e.entry(t, "chat_messages", apr)

	second := e.archiver(t, nil, nil)
	opts := Options{RunID: otherRun}
	if sameRun {
		opts.RunID = firstRun // a dead letter resent from the dashboard carries the same run
	}
	var acted atomic.Int32
	second.SetHook(func(_ context.Context, s string, _ *Entry) {
		acted.Add(1)
		t.Errorf("the second mover reached %s while the first held the partition", s)
	})
	res, err := second.Run(ctx, opts)
	require.NoError(t, err, "the second mover skips, it does not fail")
	var item *Item
	for i := range res.Items {
		if res.Items[i].Partition == apr {
			item = &res.Items[i]
		}
	}
	require.NotNil(t, item, "%+v", res.Items)
	require.Equal(t, "skipped", item.Action, "%+v", item)
	require.Contains(t, item.Reason, "another run")
	after := e.entry(t, "chat_messages", apr)
	require.Equal(t, before.State, after.State, "the second mover left the manifest alone")
	require.Equal(t, before.Attempts, after.Attempts)
	require.Zero(t, acted.Load(), "one mover acts")

	close(resume)
	require.NoError(t, <-done)
	en := e.entry(t, "chat_messages", apr)
	require.Equal(t, StateDropped, en.State)
	require.NotNil(t, en.RunID)
	require.Equal(t, firstRun, *en.RunID, "the first mover's run moved it")
	require.Equal(t, 1, en.Attempts, "exported once")
	require.Equal(t, []string{en.ObjectKey, en.ObjectKey + ".manifest.json"}, e.objects(t))
	require.Zero(t, e.incompleteUploads(t))
	_, err = Restore(ctx, e.archiver(t, nil, nil), "chat_messages", apr, RestoreAttach, "")
	require.NoError(t, err)
	n, sum := e.fingerprint(t, apr)
	require.Equal(t, n0, n)
	require.Equal(t, sum0, sum)
}

// TestArchiveTwoMoversAtOnce: a second run (another node, a forced run) while the first is
// between its export and the verify does not touch the partition.
func TestArchiveTwoMoversAtOnce(t *testing.T) { twoMovers(t, StepExported, false) }

// TestArchiveDeadLetterResendDuringExport: the same run resent from the RocketMQ dashboard
// (which skips skip_if_running) while the first delivery is in the middle of the export stream.
func TestArchiveDeadLetterResendDuringExport(t *testing.T) { twoMovers(t, StepExporting, true) }

// TestArchiveObjectReplacedBeforeDrop: an object overwritten after its verify (a stale mover
// finishing its upload late, with another copy) is noticed before the DROP: the object's size
// and ETag are read again and the partition is exported again instead of dropped. The
// replacement has the verified object's size, so only the ETag tells them apart.
func TestArchiveObjectReplacedBeforeDrop(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	apr := e.month(t, "chat_messages", month(2025, 4), 2000)
	n0, sum0 := e.fingerprint(t, apr)
	a := e.archiver(t, nil, nil)
	var once atomic.Bool
	a.SetHook(func(ctx context.Context, step string, en *Entry) {
		if step != StepDetached || !once.CompareAndSwap(false, true) {
			return
		}
		// Another copy of the same size: the verified bytes with one changed.
		o, err := e.bucket.Client.GetObject(ctx, en.Bucket, en.ObjectKey, minio.GetObjectOptions{})
		require.NoError(t, err)
		b, err := io.ReadAll(o)
		o.Close()
		require.NoError(t, err)
		require.EqualValues(t, *en.Bytes, len(b))
		b[len(b)/2] ^= 0xff
		_, err = e.bucket.Client.PutObject(ctx, en.Bucket, en.ObjectKey, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{})
		require.NoError(t, err)
	})
	_, err := a.Run(ctx, Options{})
	require.NoError(t, err)
	en := e.entry(t, "chat_messages", apr)
	require.Equal(t, StateDropped, en.State)
	require.Equal(t, 2, en.Attempts, "exported again after the overwrite")
	_, err = Restore(ctx, e.archiver(t, nil, nil), "chat_messages", apr, RestoreAttach, "")
	require.NoError(t, err)
	n, sum := e.fingerprint(t, apr)
	require.Equal(t, n0, n)
	require.Equal(t, sum0, sum)
}

// TestArchiveRefusesUnsafePartitionNames: a partition whose name would not make a plain
// object key (a slash, "..", anything but letters, digits and _) is refused before any S3
// call, and left in place; the other partitions still move.
func TestArchiveRefusesUnsafePartitionNames(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tc := range []struct{ name, from, to string }{
		{"../../escape/x", "2025-01-01", "2025-02-01"},
		{"cm..2025_02", "2025-02-01", "2025-03-01"},
		{"cm 2025 03", "2025-03-01", "2025-04-01"},
	} {
		e.exec(t, `CREATE TABLE "`+tc.name+`" PARTITION OF chat_messages FOR VALUES FROM ('`+tc.from+`') TO ('`+tc.to+`')`)
		e.exec(t, `INSERT INTO chat_messages (id, channel_id, seq, sender_id, created_at) VALUES (1, 1, 1, 1, $1::timestamptz + interval '1 day')`, tc.from)
	}
	apr := e.month(t, "chat_messages", month(2025, 4), 10)
	e.cfg.MaxPartitions = 10
	res, err := e.archiver(t, nil, nil).Run(ctx, Options{})
	require.ErrorIs(t, err, ErrRefused)
	require.True(t, AllRefused(err), "renaming is an operator's job: %v", err)
	refused := 0
	for _, it := range res.Items {
		if it.Partition == apr {
			require.Equal(t, "archived", it.Action)
			continue
		}
		refused++
		require.Equal(t, "skipped", it.Action, "%+v", it)
		require.Contains(t, it.Reason, "object key")
		require.Empty(t, it.Object)
		ex, att := e.tableExists(t, `"`+it.Partition+`"`)
		require.True(t, ex && att, it.Partition)
	}
	require.Equal(t, 3, refused, "%+v", res.Items)
	for _, k := range e.objects(t) {
		require.True(t, strings.HasPrefix(k, "archive/"+e.schema.Name+"/chat_messages/"+apr), k)
	}
	var n int
	require.NoError(t, e.schema.Pool.QueryRow(ctx, `SELECT count(*) FROM partition_archives`).Scan(&n))
	require.Equal(t, 1, n)
}

// latePutStore is the real S3 client whose first upload of an archive object is held: it
// takes the whole stream (so the export's COPY ends), says so on held, and sends it only
// once send closes, as a mover whose PUT is slow or retried lands it late.
type latePutStore struct {
	*minio.Client
	once       atomic.Bool
	held, send chan struct{}
}

func (s *latePutStore) PutObject(ctx context.Context, bucket, key string, r io.Reader, size int64, opts minio.PutObjectOptions) (minio.UploadInfo, error) {
	if !strings.HasSuffix(key, ".csv.gz") || !s.once.CompareAndSwap(false, true) {
		return s.Client.PutObject(ctx, bucket, key, r, size, opts)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return minio.UploadInfo{}, err
	}
	close(s.held)
	<-s.send
	return s.Client.PutObject(ctx, bucket, key, bytes.NewReader(b), int64(len(b)), opts)
}

// TestArchiveStaleMoverCannotReplaceTheVerifiedObject: mover A's lock session is ended
// (pg_terminate_backend, as idle_session_timeout or a NAT would) while its upload is in
// flight; rows arrive; mover B takes the lock, exports, verifies and drops; then A's upload
// of its older copy lands. The object the manifest names is still B's complete copy: the
// restore gives every row back.
func TestArchiveStaleMoverCannotReplaceTheVerifiedObject(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	apr := e.month(t, "chat_messages", month(2025, 4), 2000)
	s3 := &latePutStore{Client: e.bucket.Client, held: make(chan struct{}), send: make(chan struct{})}
	first, err := New(e.schema.Pool, s3, e.cfg, func() time.Time { return testNow }, e.log)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := first.Run(ctx, Options{})
		done <- err
	}()
	select {
	case <-s3.held:
	case err := <-done:
		t.Fatalf("the first mover ended before its upload: %v", err)
	}

	// End the first mover's lock session.
	lockHeld := `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2
		AND classid::bigint = hashtext('partition_archives')::bigint & 4294967295
		AND objid::bigint = hashtext($1)::bigint & 4294967295`
	key := e.schema.Name + ".chat_messages." + apr
	var pid int
	require.NoError(t, e.schema.Pool.QueryRow(ctx, lockHeld, key).Scan(&pid))
	e.exec(t, `SELECT pg_terminate_backend($1)`, pid)
	require.Eventually(t, func() bool {
		var n int
		err := e.schema.Pool.QueryRow(ctx, `SELECT count(*) FROM (`+lockHeld+`) l`, key).Scan(&n)
		return err == nil && n == 0
	}, 10*time.Second, 10*time.Millisecond, "the lock is freed with its session")

	// Rows written after the first mover's export: its copy is older.
	e.exec(t, `INSERT INTO chat_messages (id, channel_id, seq, sender_id, body, created_at)
		VALUES (999000001, 1, 1, 1, 'late', '2025-04-15T00:00:00Z')`)
	n0, sum0 := e.fingerprint(t, apr)

	res, err := e.archiver(t, nil, nil).Run(ctx, Options{})
	require.NoError(t, err)
	require.Equal(t, "archived", res.Items[0].Action, "%+v", res.Items)
	require.Equal(t, StateDropped, e.entry(t, "chat_messages", apr).State)
	require.Equal(t, e.entry(t, "chat_messages", apr).ObjectKey, res.Items[0].Object, "the run reports the object it verified")

	close(s3.send)
	require.Error(t, <-done, "the first mover lost its lock: it records nothing")
	en := e.entry(t, "chat_messages", apr)
	require.Equal(t, StateDropped, en.State)
	require.EqualValues(t, n0, *en.Rows)
	_, err = Restore(ctx, e.archiver(t, nil, nil), "chat_messages", apr, RestoreAttach, "")
	require.NoError(t, err)
	n, sum := e.fingerprint(t, apr)
	require.Equal(t, n0, n)
	require.Equal(t, sum0, sum, "the verified copy came back, not the stale mover's")
}
