package archive

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
)

func TestArchiveExportVerifyDropRestore(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	apr := e.month(t, "chat_messages", month(2025, 4), 3000)
	may := e.month(t, "chat_messages", month(2025, 5), 2000)
	jun := e.month(t, "chat_messages", month(2025, 6), 100)                                                               // hot: 12 months before June 2026 starts
	cur := e.month(t, "chat_messages", month(2026, 6), 10)                                                                // current month
	e.month(t, "chat_messages", month(2026, 7), 0)                                                                        // future
	e.exec(t, `INSERT INTO chat_messages (id, channel_id, seq, sender_id, created_at) VALUES (1, 1, 1, 1, '2020-01-01')`) // lands in DEFAULT
	aprN, aprSum := e.fingerprint(t, apr)
	mayN, maySum := e.fingerprint(t, may)
	require.EqualValues(t, 3000, aprN)

	res, err := e.archiver(t, nil, nil).Run(ctx, Options{})
	require.NoError(t, err)
	var archived []string
	for _, it := range res.Items {
		if it.Action == "archived" {
			archived = append(archived, it.Partition)
		}
	}
	require.Equal(t, []string{apr, may}, archived, "oldest first; hot, current and future months stay: %+v", res.Items)
	for _, p := range []string{apr, may} {
		ex, _ := e.tableExists(t, p)
		require.False(t, ex, "%s dropped", p)
		en := e.entry(t, "chat_messages", p)
		require.Equal(t, StateDropped, en.State)
		require.Equal(t, "archive/"+e.schema.Name+"/chat_messages/"+p+".csv.gz", en.ObjectKey)
	}
	for _, p := range []string{jun, cur, "chat_messages_default"} {
		ex, att := e.tableExists(t, p)
		require.True(t, ex && att, "%s untouched", p)
	}
	require.EqualValues(t, 3000, *e.entry(t, "chat_messages", apr).Rows)
	require.ElementsMatch(t, []string{
		"archive/" + e.schema.Name + "/chat_messages/" + apr + ".csv.gz",
		"archive/" + e.schema.Name + "/chat_messages/" + apr + ".csv.gz.manifest.json",
		"archive/" + e.schema.Name + "/chat_messages/" + may + ".csv.gz",
		"archive/" + e.schema.Name + "/chat_messages/" + may + ".csv.gz.manifest.json",
	}, e.objects(t))

	// Analysts can read it: gzip'd CSV with a header line.
	o, err := e.bucket.Client.GetObject(ctx, e.bucket.Name, e.entry(t, "chat_messages", apr).ObjectKey, minio.GetObjectOptions{})
	require.NoError(t, err)
	gz, err := gzip.NewReader(o)
	require.NoError(t, err)
	head := make([]byte, 64)
	_, err = io.ReadFull(gz, head)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(head), "id,channel_id,seq,sender_id,body,created_at\n"), string(head))
	o.Close()

	// A second run finds nothing to do.
	res, err = e.archiver(t, nil, nil).Run(ctx, Options{})
	require.NoError(t, err)
	for _, it := range res.Items {
		require.NotEqual(t, "archived", it.Action, "%+v", it)
	}

	// Restore April into the parent, May beside it; both hold exactly the rows archived.
	a := e.archiver(t, nil, nil)
	rr, err := Restore(ctx, a, "chat_messages", apr, RestoreAttach, "")
	require.NoError(t, err)
	require.EqualValues(t, 3000, rr.Rows)
	_, att := e.tableExists(t, apr)
	require.True(t, att)
	n, sum := e.fingerprint(t, apr)
	require.Equal(t, aprN, n)
	require.Equal(t, aprSum, sum, "restored rows equal the archived ones, value by value")
	var viaParent int64
	require.NoError(t, e.schema.Pool.QueryRow(ctx, `SELECT count(*) FROM chat_messages WHERE created_at >= '2025-04-01' AND created_at < '2025-05-01'`).Scan(&viaParent))
	require.EqualValues(t, 3000, viaParent)

	_, err = Restore(ctx, a, "chat_messages", may, RestoreSeparate, "")
	require.NoError(t, err)
	ex, att := e.tableExists(t, may+"_restored")
	require.True(t, ex)
	require.False(t, att)
	n, sum = e.fingerprint(t, may+"_restored")
	require.Equal(t, mayN, n)
	require.Equal(t, maySum, sum)
	require.Equal(t, StateRestored, e.entry(t, "chat_messages", may).State)

	_, err = Restore(ctx, a, "chat_messages", apr, RestoreAttach, "")
	require.ErrorContains(t, err, "already restored")

	// A restored partition is not archived again by the next run: the operator brought it back.
	res, err = e.archiver(t, nil, nil).Run(ctx, Options{})
	require.NoError(t, err)
	for _, it := range res.Items {
		if it.Partition == apr {
			require.Equal(t, "skipped", it.Action)
			require.Equal(t, StateRestored, it.State)
		}
	}
	ex, att = e.tableExists(t, apr)
	require.True(t, ex && att)
}

func TestArchiveOtherTablesNullsAndKeepDetached(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	keep := false
	e.cfg.Drop = &keep
	inbox := e.month(t, "chat_inbox", month(2025, 11), 500) // hot_months 6: cutoff 2025-12-01
	audit := e.month(t, "audit_logs", month(2026, 2), 500)  // hot_months 3: cutoff 2026-03-01
	hotAudit := e.month(t, "audit_logs", month(2026, 3), 10)
	inboxN, inboxSum := e.fingerprint(t, inbox)
	auditN, auditSum := e.fingerprint(t, audit)

	res, err := e.archiver(t, nil, nil).Run(ctx, Options{})
	require.NoError(t, err)
	kept := 0
	for _, it := range res.Items {
		if it.Action == "kept_detached" {
			kept++
		}
	}
	require.Equal(t, 2, kept, "%+v", res.Items)
	for _, p := range []string{inbox, audit} {
		ex, att := e.tableExists(t, p)
		require.True(t, ex, p)
		require.False(t, att, p)
		require.Equal(t, StateDetached, e.entry(t, strings.TrimSuffix(strings.TrimSuffix(p, "_2025_11"), "_2026_02"), p).State)
	}
	_, att := e.tableExists(t, hotAudit)
	require.True(t, att)

	// Turning drop on later finishes the job, after re-reading the detached tables.
	on := true
	e.cfg.Drop = &on
	_, err = e.archiver(t, nil, nil).Run(ctx, Options{})
	require.NoError(t, err)
	for _, p := range []string{inbox, audit} {
		ex, _ := e.tableExists(t, p)
		require.False(t, ex, p)
	}
	a := e.archiver(t, nil, nil)
	_, err = Restore(ctx, a, "chat_inbox", inbox, RestoreAttach, "")
	require.NoError(t, err)
	_, err = Restore(ctx, a, "audit_logs", audit, RestoreAttach, "")
	require.NoError(t, err)
	n, sum := e.fingerprint(t, inbox)
	require.Equal(t, inboxN, n)
	require.Equal(t, inboxSum, sum, "NULL read_at stays NULL")
	n, sum = e.fingerprint(t, audit)
	require.Equal(t, auditN, n)
	require.Equal(t, auditSum, sum, "NULL user_id and identity ids survive")
}

func TestArchiveGuardRails(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for m := time.Month(1); m <= 5; m++ {
		e.month(t, "chat_messages", month(2025, m), 50)
	}
	e.exec(t, `INSERT INTO chat_messages (id, channel_id, seq, sender_id, created_at) VALUES (1, 1, 1, 1, '2019-01-01')`)

	// Dry run: lists what would move, moves nothing, writes nothing.
	res, err := e.archiver(t, nil, nil).Run(ctx, Options{DryRun: true})
	require.NoError(t, err)
	var would []string
	for _, it := range res.Items {
		require.NotEqual(t, "chat_messages_default", it.Partition)
		if it.Action == "would_archive" {
			would = append(would, it.Partition)
		}
	}
	require.Len(t, would, 3, "max_partitions defaults to 3: %+v", res.Items)
	require.True(t, res.Capped)
	require.Empty(t, e.objects(t))
	var n int
	require.NoError(t, e.schema.Pool.QueryRow(ctx, `SELECT count(*) FROM partition_archives`).Scan(&n))
	require.Zero(t, n)

	// The cap holds per run; the next run takes the rest.
	res, err = e.archiver(t, nil, nil).Run(ctx, Options{MaxPartitions: 2})
	require.NoError(t, err)
	require.True(t, res.Capped)
	require.NoError(t, e.schema.Pool.QueryRow(ctx, `SELECT count(*) FROM partition_archives WHERE state = 'dropped'`).Scan(&n))
	require.Equal(t, 2, n)
	ex, _ := e.tableExists(t, "chat_messages_2025_01")
	require.False(t, ex, "oldest first")

	// The DEFAULT partition is never archived, even holding only ancient rows.
	ex, att := e.tableExists(t, "chat_messages_default")
	require.True(t, ex && att)

	// Tables not range-partitioned by time are refused, not guessed at.
	e.exec(t, `CREATE TABLE plain_t (id int)`)
	e.exec(t, `CREATE TABLE list_t (k int, at timestamptz) PARTITION BY LIST (k)`)
	e.exec(t, `CREATE TABLE byid_t (id bigint) PARTITION BY RANGE (id)`)
	for _, tbl := range []string{"plain_t", "list_t", "byid_t", "missing_t"} {
		e.cfg.Tables = []TableConfig{{tbl, 1}}
		_, err := e.archiver(t, nil, nil).Run(ctx, Options{})
		require.ErrorIs(t, err, ErrRefused, tbl)
	}

	// Config refuses a hot period that would reach the current month.
	_, err = New(e.schema.Pool, e.bucket.Client, Config{Tables: []TableConfig{{"chat_messages", 0}}}, time.Now, e.log)
	require.ErrorContains(t, err, "tables[0].hot_months")
}

// TestArchiveRecheckBeforeDrop: rows written into a partition after its export was verified
// are not lost: the re-read before DROP sees them and the partition is exported again (into
// the same object) before it goes.
func TestArchiveRecheckBeforeDrop(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	apr := e.month(t, "chat_messages", month(2025, 4), 1000)
	a := e.archiver(t, nil, nil)
	a.SetHook(func(ctx context.Context, step string, en *Entry) {
		if step == StepVerified && en.Attempts == 1 {
			_, err := e.schema.Pool.Exec(ctx, `INSERT INTO chat_messages (id, channel_id, seq, sender_id, body, created_at)
				VALUES (42, 1, 1, 1, 'late write', '2025-04-20')`)
			require.NoError(t, err)
		}
	})
	_, err := a.Run(ctx, Options{})
	require.NoError(t, err)
	en := e.entry(t, "chat_messages", apr)
	require.Equal(t, StateDropped, en.State)
	require.EqualValues(t, 1001, *en.Rows)
	require.Equal(t, 2, en.Attempts)
	_, err = Restore(ctx, e.archiver(t, nil, nil), "chat_messages", apr, RestoreSeparate, "back")
	require.NoError(t, err)
	var body string
	require.NoError(t, e.schema.Pool.QueryRow(ctx, `SELECT body FROM back WHERE id = 42`).Scan(&body))
	require.Equal(t, "late write", body)
}

// TestArchiveCancelAtEachStep cancels the run at every step; the next run finishes the move
// and the archive restores to the same rows.
func TestArchiveCancelAtEachStep(t *testing.T) {
	for _, step := range []string{StepExporting, StepExported, StepVerified, StepDetached} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t)
			apr := e.month(t, "chat_messages", month(2025, 4), 800)
			n0, sum0 := e.fingerprint(t, apr)
			ctx, cancel := context.WithCancel(context.Background())
			a := e.archiver(t, nil, nil)
			a.SetHook(func(_ context.Context, s string, _ *Entry) {
				if s == step {
					cancel()
				}
			})
			_, err := a.Run(ctx, Options{})
			require.Error(t, err)
			require.True(t, errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "context canceled"), err.Error())
			ex, _ := e.tableExists(t, apr)
			require.True(t, ex, "a cancelled run never leaves a partition dropped")

			_, err = e.archiver(t, nil, nil).Run(context.Background(), Options{})
			require.NoError(t, err)
			require.Equal(t, StateDropped, e.entry(t, "chat_messages", apr).State)
			require.Len(t, e.objects(t), 2, "one object and its sidecar: %v", e.objects(t))
			require.Zero(t, e.incompleteUploads(t))
			_, err = Restore(context.Background(), e.archiver(t, nil, nil), "chat_messages", apr, RestoreAttach, "")
			require.NoError(t, err)
			n, sum := e.fingerprint(t, apr)
			require.Equal(t, n0, n)
			require.Equal(t, sum0, sum)
		})
	}
}

// TestArchiveS3Outage stops a private S3 server after the export: verification fails with a
// retryable error, nothing is detached or dropped, and the next run after S3 is back resumes
// from the recorded step.
func TestArchiveS3Outage(t *testing.T) {
	e := newEnv(t)
	s3 := testenv.StartPrivateS3(t)
	b := s3.NewBucket(t)
	e.cfg.Bucket = b.Name
	apr := e.month(t, "chat_messages", month(2025, 4), 2000)
	n0, sum0 := e.fingerprint(t, apr)

	a := e.archiver(t, nil, b.Client)
	a.SetHook(func(_ context.Context, step string, _ *Entry) {
		if step == StepExported {
			s3.Stop()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := a.Run(ctx, Options{})
	require.Error(t, err)
	require.False(t, AllRefused(err), "an outage is retried: %v", err)
	require.Equal(t, StateExported, e.entry(t, "chat_messages", apr).State)
	_, att := e.tableExists(t, apr)
	require.True(t, att, "still attached while S3 is down")

	s3.Start()
	_, err = e.archiver(t, nil, b.Client).Run(ctx, Options{})
	require.NoError(t, err)
	require.Equal(t, StateDropped, e.entry(t, "chat_messages", apr).State)
	_, err = Restore(ctx, e.archiver(t, nil, b.Client), "chat_messages", apr, RestoreAttach, "")
	require.NoError(t, err)
	n, sum := e.fingerprint(t, apr)
	require.Equal(t, n0, n)
	require.Equal(t, sum0, sum)
}
