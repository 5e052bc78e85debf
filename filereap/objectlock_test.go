package filereap_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/filereap"
	"github.com/chatplat/job-service/internal/filesvc"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
)

type fixture struct {
	db *pgxpool.Pool
	// fs is the file service's pool: its own application_name, so the test can see when
	// its statements wait on a lock.
	fs     *pgxpool.Pool
	fsName string
	b      *testenv.Bucket
	dsn    string
}

func newFixture(t *testing.T) *fixture { return newFixtureAt(t, "") }

// newFixtureAt is newFixture with both the GC's and the file service's connections at the
// server default isolation level defaultIsolation (a database or role may set one), or the
// server's own default when empty.
func newFixtureAt(t *testing.T, defaultIsolation string) *fixture {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	require.NoError(t, ledger.Migrate(context.Background(), s.Pool))
	db := s.Pool
	if defaultIsolation != "" {
		cfg := s.Pool.Config()
		cfg.ConnConfig.RuntimeParams["default_transaction_isolation"] = defaultIsolation
		var err error
		db, err = pgxpool.NewWithConfig(context.Background(), cfg)
		require.NoError(t, err)
		t.Cleanup(db.Close)
	}
	cfg := db.Config()
	name := "filesvc-" + testenv.Suffix()
	cfg.ConnConfig.RuntimeParams["application_name"] = name
	fs, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(fs.Close)
	return &fixture{db: db, fs: fs, fsName: name, b: testenv.NewBucket(t), dsn: s.DSN}
}

// fileServiceWaits reports whether one of the file service's statements waits on a lock.
func (f *fixture) fileServiceWaits(ctx context.Context) (bool, error) {
	var waiting bool
	err := f.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
		WHERE application_name = $1 AND wait_event_type = 'Lock')`, f.fsName).Scan(&waiting)
	return waiting, err
}

// file inserts a row (and its object when withObject) at key.
func (f *fixture) file(t *testing.T, id int64, key string, status, refCount int, withObject bool) {
	t.Helper()
	if withObject {
		f.b.Put(t, key, 10)
	}
	_, err := f.db.Exec(context.Background(), `INSERT INTO file_metadata (id, file_hash, bucket, object_path, size_bytes,
		ref_count, status, updated_at) VALUES ($1, $2, $3, $4, 10, $5, $6, now() - interval '2 days')`,
		id, fmt.Sprintf("h%d", id), f.b.Name, key, refCount, status)
	require.NoError(t, err)
}

// liveRowsHaveObjects fails the test for every row not in status 3 whose object is gone.
func (f *fixture) liveRowsHaveObjects(t *testing.T) {
	t.Helper()
	rows, err := f.db.Query(context.Background(), `SELECT id, object_path FROM file_metadata WHERE status <> 3`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var id int64
		var key string
		require.NoError(t, rows.Scan(&id, &key))
		require.True(t, f.b.Exists(t, key), "row %d names %s, which the GC deleted", id, key)
	}
	require.NoError(t, rows.Err())
}

// TestFileServiceRowCannotSlipPastTheCollector races the file service's statements (the
// contract's) against a GC batch at its narrowest point: after the batch looked for other
// rows naming its objects and before its tombstones commit. The file service either wins (the
// GC sees its row and keeps the object) or is refused; never a live row without its object.
// It runs with the server's default isolation level and again with a database whose default
// is REPEATABLE READ: there a transaction's snapshot is its first statement's, taken before
// the object lock's wait ends, so both sides must open their transactions READ COMMITTED.
func TestFileServiceRowCannotSlipPastTheCollector(t *testing.T) {
	for name, write := range map[string]func(ctx context.Context, f *fixture, obj filesvc.Object) error{
		"dedup insert": func(ctx context.Context, f *fixture, obj filesvc.Object) error {
			return filesvc.AddDedup(ctx, f.fs, obj, filesvc.Row{ID: 2, Hash: "h1", Size: 10})
		},
		"re-point": func(ctx context.Context, f *fixture, obj filesvc.Object) error {
			return filesvc.MoveTo(ctx, f.fs, obj, 3)
		},
		"upload insert": func(ctx context.Context, f *fixture, obj filesvc.Object) error {
			return filesvc.AddUpload(ctx, f.fs, obj, filesvc.Row{ID: 2, Hash: "h1", Size: 10})
		},
	} {
		for _, at := range []struct {
			point string
			set   func(r *filereap.Reaper, fn func(context.Context, []int64))
			// The file service before the check wins and the object is kept (shared); after
			// it, the file service waits for the tombstones and is refused.
			wantShared  int
			wantRefused bool
		}{
			{"before the check", (*filereap.Reaper).BeforeLocks, 1, false},
			{"after the check", (*filereap.Reaper).BeforeTombstoneCommit, 0, true},
		} {
			for _, iso := range []string{"", "repeatable read"} {
				sub := name + "/" + at.point
				if iso != "" {
					sub += "/default " + iso
				}
				t.Run(sub, func(t *testing.T) {
					testRaceAt(t, iso, write, at.set, at.wantShared, at.wantRefused)
				})
			}
		}
	}
}

// gatedS3 holds multi-deletes until gate is closed.
type gatedS3 struct {
	filereap.ObjectStore
	gate <-chan struct{}
}

func (g gatedS3) RemoveObjectsWithResult(ctx context.Context, bucket string, objects <-chan minio.ObjectInfo, opts minio.RemoveObjectsOptions) <-chan minio.RemoveObjectResult {
	select {
	case <-g.gate:
	case <-ctx.Done():
	}
	return g.ObjectStore.RemoveObjectsWithResult(ctx, bucket, objects, opts)
}

func testRaceAt(t *testing.T, defaultIsolation string, write func(ctx context.Context, f *fixture, obj filesvc.Object) error,
	set func(r *filereap.Reaper, fn func(context.Context, []int64)), wantShared int, wantRefused bool) {
	{
		{
			ctx := context.Background()
			f := newFixtureAt(t, defaultIsolation)
			f.file(t, 1, "files/a", 2, 0, true) // collectable
			f.file(t, 3, "files/b", 1, 1, true) // live, elsewhere (the re-point's row)
			obj := filesvc.Object{Bucket: f.b.Name, Path: "files/a"}
			// The GC's delete waits for the file service to be done, so the file service
			// meets the tombstone, not the row-less state after the GC finished (where an
			// upload is rightly allowed: its PUT comes after).
			fsDone := make(chan struct{})
			reaper := filereap.NewReaper(f.db, gatedS3{ObjectStore: f.b.Client, gate: fsDone}, filereap.FileTable{}.WithDefaults(),
				filereap.ReaperOptions{}.WithDefaults(10*time.Second), testenv.Logger(t))
			done := make(chan error, 1)
			set(reaper, func(context.Context, []int64) {
				// The file service's transaction runs on a pool connection; the test only waits
				// until it is done or blocked on a lock (the GC's), never a fixed time.
				go func() { done <- write(ctx, f, obj); close(fsDone) }()
				deadline := time.Now().Add(10 * time.Second)
				for time.Now().Before(deadline) {
					select {
					case err := <-done:
						done <- err
						return
					default:
					}
					if w, err := f.fileServiceWaits(ctx); err == nil && w {
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
				t.Errorf("the file service neither finished nor waited on a lock within 10s")
			})
			res, err := reaper.Reap(ctx, []filereap.Candidate{{ID: 1, NotAfter: time.Now()}}, filereap.ReapOptions{})
			require.NoError(t, err)
			require.Len(t, res.Removed, 1)
			werr := <-done
			if wantRefused {
				require.True(t, errors.Is(werr, filesvc.ErrRefused), "file service: %v", werr)
			} else {
				require.NoError(t, werr)
			}
			require.Equal(t, wantShared, res.Shared)
			f.liveRowsHaveObjects(t)
		}
	}
}

// TestRepointRefusesATombstone: a row the GC is collecting (status 3) is as good as gone; the
// file service's re-point must not move it onto another object (its old object would never be
// collected, and the GC's record of the row would no longer name the row's object).
func TestRepointRefusesATombstone(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.file(t, 1, "files/a", 1, 1, true) // live: the re-point's target
	f.file(t, 2, "files/b", 3, 0, true) // a tombstone
	err := filesvc.MoveTo(ctx, f.fs, filesvc.Object{Bucket: f.b.Name, Path: "files/a"}, 2)
	require.ErrorIs(t, err, filesvc.ErrRefused)
	var path string
	require.NoError(t, f.db.QueryRow(ctx, `SELECT object_path FROM file_metadata WHERE id = 2`).Scan(&path))
	require.Equal(t, "files/b", path)
}

// TestRepointDuringACollectionDoesNotDeadlock: the file service re-points a row of a GC batch
// onto another object of the batch while the GC holds the batch's rows. The file service holds
// the object's lock and wants the row; the GC must not hold the row and want the object.
func TestRepointDuringACollectionDoesNotDeadlock(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.file(t, 1, "files/a", 2, 0, true) // collectable, its object shared with row 2
	f.file(t, 2, "files/a", 1, 1, false)
	f.file(t, 3, "files/b", 2, 0, true) // collectable, re-pointed onto files/a meanwhile
	reaper := filereap.NewReaper(f.db, f.b.Client, filereap.FileTable{}.WithDefaults(),
		filereap.ReaperOptions{}.WithDefaults(10*time.Second), testenv.Logger(t))
	done := make(chan error, 1)
	reaper.OnLocked(func(context.Context, []int64) {
		go func() { done <- filesvc.MoveTo(ctx, f.fs, filesvc.Object{Bucket: f.b.Name, Path: "files/a"}, 3) }()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if w, err := f.fileServiceWaits(ctx); err == nil && w {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Errorf("the file service did not wait on a lock within 10s")
	})
	now := time.Now()
	_, err := reaper.Reap(ctx, []filereap.Candidate{{ID: 1, NotAfter: now}, {ID: 3, NotAfter: now}}, filereap.ReapOptions{})
	require.NoError(t, err)
	werr := <-done
	require.True(t, werr == nil || errors.Is(werr, filesvc.ErrRefused), "file service: %v", werr)
	f.liveRowsHaveObjects(t)
}
