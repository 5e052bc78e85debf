package filereap_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/filegc"
	"github.com/chatplat/job-service/filereap"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/filesvc"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// raceSize is one round's size in `go test`; GC_SOAK=10m (make soak-gc) runs rounds for that long.
const (
	raceRounds    = 3
	raceWriters   = 4
	raceRoundTime = 3 * time.Second // the writers' time per round: long enough for events to come due
)

// TestGCRacesWithFileService: writers play the file service by its contract (upload, dedup
// insert at an existing object, upload at an existing path, re-point, re-reference, release
// to 0 and send the event) while the sweep and the event GC run against them, cancelled at
// random points and over an S3 that stalls, and sometimes deletes and then stalls past
// s3_timeout, and while sweeper processes (this binary, see TestMain) are killed with -9 at
// random points; a cut attempt's held delete may still be running at the server when its
// retry starts. After each round: every row not in
// status 3 has its object; then, after a healthy sweep and event pass, no row is in status 3,
// no tombstone is left, and every collected file is in gc_log once. The writers' and the
// faults' choices follow GC_RACE_SEED (printed; goroutine interleaving is the scheduler's).
func TestGCRacesWithFileService(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("GC_RACE_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "GC_RACE_SEED")
	}
	var soak time.Duration
	if s := os.Getenv("GC_SOAK"); s != "" {
		var err error
		soak, err = time.ParseDuration(s)
		require.NoError(t, err, "GC_SOAK")
	}
	t.Logf("GC_RACE_SEED=%d", seed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("reproduce the choices with GC_RACE_SEED=%d", seed)
		}
	})
	r := newRace(t, seed)
	start := time.Now()
	for round := 0; round < raceRounds || time.Since(start) < soak; round++ {
		r.round(t, round)
		if t.Failed() {
			return
		}
	}
	t.Logf("%d rounds in %s: %d file service operations (%d refused by the contract), %d files collected "+
		"(%d by the sweep, %d by events, %d by sweeper processes later killed), %d GC attempts cut, %d sweeper processes killed with -9, %d S3 faults; invariant violations: 0",
		r.rounds, time.Since(start).Round(time.Millisecond), r.ops.Load(), r.refused.Load(), r.collected,
		r.bySweep.Load(), r.byEvent.Load(), int64(r.collected)-r.bySweep.Load()-r.byEvent.Load(), r.cuts.Load(), r.kills.Load(), r.s3.faults.Load())
}

type race struct {
	f      *fixture
	seed   uint64
	ledger *ledger.Ledger
	s3     *faultyS3
	nextID atomic.Int64

	mu   sync.Mutex
	rows []filesvc.Object // by index: id - 1 (ids are never reused)
	evq  []queued

	kills                                atomic.Int64
	rounds, collected                    int
	ops, refused, bySweep, byEvent, cuts atomic.Int64
}

func newRace(t *testing.T, seed uint64) *race {
	f := newFixture(t)
	return &race{f: f, seed: seed, ledger: ledger.New(f.db),
		s3: &faultyS3{ObjectStore: f.b.Client, rnd: rand.New(rand.NewPCG(seed, 1))}}
}

func (r *race) round(t *testing.T, round int) {
	ctx := context.Background()
	r.rounds++
	gcCtx, stopGC := context.WithCancel(ctx)
	var gcs sync.WaitGroup
	gcs.Add(2)
	go func() {
		defer gcs.Done()
		assert.NoError(t, r.sweepLoop(gcCtx, rand.New(rand.NewPCG(r.seed, uint64(round)<<8|1)), r.s3, true))
	}()
	gcs.Add(1)
	go func() { defer gcs.Done(); r.killLoop(gcCtx, t, round) }()
	go func() {
		defer gcs.Done()
		r.eventLoop(gcCtx, t, rand.New(rand.NewPCG(r.seed, uint64(round)<<8|2)), r.s3, true)
	}()
	var writers sync.WaitGroup
	for w := range raceWriters {
		writers.Add(1)
		go func() {
			defer writers.Done()
			rnd := rand.New(rand.NewPCG(r.seed, uint64(round)<<8|uint64(16+w)))
			for begin := time.Now(); time.Since(begin) < raceRoundTime; {
				if err := r.fileServiceOp(ctx, rnd); err != nil {
					t.Errorf("round %d: file service: %v", round, err)
					return
				}
			}
		}()
	}
	writers.Wait()
	stopGC()
	gcs.Wait()
	r.s3.held.Wait() // the server is done with what it accepted
	// Mid-state (tombstones allowed): a row the file service may use has its object.
	r.f.liveRowsHaveObjects(t)
	r.heal(t, round)
	r.f.liveRowsHaveObjects(t)
	var tombRows, tombs, logged, distinct, loggedLive int
	require.NoError(t, r.f.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM file_metadata WHERE status = 3),
		(SELECT count(*) FROM gc_tombstones), (SELECT count(*) FROM gc_log), (SELECT count(DISTINCT file_id) FROM gc_log),
		(SELECT count(*) FROM gc_log g JOIN file_metadata m ON m.id = g.file_id)`).Scan(&tombRows, &tombs, &logged, &distinct, &loggedLive))
	require.Zero(t, tombRows, "round %d: rows left in status 3 after a healthy run", round)
	require.Zero(t, tombs, "round %d: tombstones left after a healthy run", round)
	require.Equal(t, distinct, logged, "round %d: a file logged twice", round)
	require.Zero(t, loggedLive, "round %d: a logged file still has its row", round)
	r.collected = logged
}

// fileServiceOp is one random operation of the file service, by the contract's statements.
func (r *race) fileServiceOp(ctx context.Context, rnd *rand.Rand) error {
	r.ops.Add(1)
	pick := func() (int64, filesvc.Object, bool) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.rows) == 0 {
			return 0, filesvc.Object{}, false
		}
		i := rnd.IntN(len(r.rows))
		return int64(i + 1), r.rows[i], true
	}
	refused := func(err error) error {
		if errors.Is(err, filesvc.ErrRefused) {
			r.refused.Add(1)
			return nil
		}
		return err
	}
	id, obj, ok := pick()
	// Half the writes that name an existing object take one whose row was released to 0 (a
	// user uploads again what another deleted): the objects the GCs are collecting.
	target := func() filesvc.Object {
		if rnd.IntN(2) == 0 {
			var o filesvc.Object
			err := r.f.fs.QueryRow(ctx, `SELECT bucket, object_path FROM file_metadata WHERE status = 2
				OFFSET floor(random() * (SELECT count(*) FROM file_metadata WHERE status = 2)) LIMIT 1`).Scan(&o.Bucket, &o.Path)
			if err == nil {
				return o
			}
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.rows) == 0 {
			return obj
		}
		return r.rows[rnd.IntN(len(r.rows))]
	}
	switch op := rnd.IntN(10); {
	case !ok || op < 2: // a new upload at a new path
		return r.upload(ctx, filesvc.Object{Bucket: r.f.b.Name, Path: fmt.Sprintf("p/%d", r.nextID.Load()+1)})
	case op < 3: // an upload at an existing object's path (same content, same key)
		return refused(r.upload(ctx, target()))
	case op < 4: // the same content as a file just collected, uploaded again: the same key
		var o filesvc.Object
		err := r.f.fs.QueryRow(ctx, `SELECT bucket, object_path FROM (SELECT bucket, object_path FROM gc_log
			ORDER BY id DESC LIMIT 3) g ORDER BY random() LIMIT 1`).Scan(&o.Bucket, &o.Path)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		return refused(r.upload(ctx, o))
	case op < 5: // a deduplicated upload; refused: upload again at a new path
		obj := target()
		nid := r.newRow(obj)
		if err := filesvc.AddDedup(ctx, r.f.fs, obj, filesvc.Row{ID: nid, Hash: "h", Size: 1}); err != nil {
			if !errors.Is(err, filesvc.ErrRefused) {
				return err
			}
			r.refused.Add(1)
			return r.upload(ctx, filesvc.Object{Bucket: r.f.b.Name, Path: fmt.Sprintf("p/%d-again", nid)})
		}
		return nil
	case op < 6: // re-point a row at another existing object
		to := target()
		if err := filesvc.MoveTo(ctx, r.f.fs, to, id); err != nil {
			return refused(err)
		}
		r.mu.Lock()
		r.rows[id-1] = to
		r.mu.Unlock()
		return nil
	case op < 7: // re-reference
		_, err := r.f.fs.Exec(ctx, filesvc.Reference, id)
		return err
	default: // release; at 0 the event goes out
		var refs int
		var ev filegc.Event
		err := r.f.fs.QueryRow(ctx, filesvc.Release, id).Scan(&refs, &ev.Bucket, &ev.ObjectPath, &ev.FileHash, &ev.EventTime)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && refs > 0 {
			return nil
		}
		if err != nil {
			return err
		}
		ev.FileID = id
		body, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.evq = append(r.evq, queued{d: filegc.Delivery{Body: body, MsgID: fmt.Sprintf("ev-%d-%d", id, time.Now().UnixNano()),
			Tag: filegc.DefaultTag}, due: ev.EventTime.Add(raceGrace)})
		r.mu.Unlock()
		return nil
	}
}

// newRow reserves an id for a row naming obj.
func (r *race) newRow(obj filesvc.Object) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, obj)
	id := int64(len(r.rows))
	r.nextID.Store(id)
	return id
}

// upload writes the row (the contract: row first), then the object.
func (r *race) upload(ctx context.Context, obj filesvc.Object) error {
	id := r.newRow(obj)
	if err := filesvc.AddUpload(ctx, r.f.fs, obj, filesvc.Row{ID: id, Hash: "h", Size: 1}); err != nil {
		return err
	}
	if _, err := r.f.b.Client.PutObject(ctx, obj.Bucket, obj.Path, bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{}); err != nil {
		return fmt.Errorf("put %s: %w", obj.Path, err)
	}
	return nil
}

// discard is the GCs' logger here: cuts and S3 faults make them warn on every round.
var discard = slog.New(slog.DiscardHandler)

type queued struct {
	d   filegc.Delivery
	due time.Time
}

// requeue is the broker: deferred events come back when due.
type requeue struct{ r *race }

func (q requeue) PublishRaw(_ context.Context, _, tag string, _ []string, body []byte, at time.Time) (string, error) {
	q.r.mu.Lock()
	defer q.r.mu.Unlock()
	id := fmt.Sprintf("def-%d", time.Now().UnixNano())
	q.r.evq = append(q.r.evq, queued{d: filegc.Delivery{Body: body, MsgID: id, Tag: tag}, due: at})
	return id, nil
}

const raceGrace = time.Second

// sweepLoop runs file_gc attempts until ctx ends, some cut at a random point, some retried
// as a second attempt of the same run.
func (r *race) sweepLoop(ctx context.Context, rnd *rand.Rand, s3 filereap.ObjectStore, chaos bool) error {
	cfg := handlers.FileGCConfig{Grace: time.Minute, BatchSize: 1 + rnd.IntN(16), PageSize: 50}
	cfg.S3Timeout = time.Second
	// The cutoff is half a second ago: a released row is a candidate almost at once (the
	// grace is policy, not what makes the GC safe).
	h, err := handlers.NewFileGC(r.f.db, s3, cfg, func() time.Time { return time.Now().Add(cfg.Grace - raceGrace/2) }, discard)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		env := job.Envelope{Job: handlers.FileGCKind, RunKey: "race:" + testenv.Suffix(), Trigger: job.TriggerManual,
			ScheduledAt: time.Now(), Shard: job.Shard{Total: 1}}
		c, err := r.ledger.ClaimRun(ctx, env, "race", "", time.Minute)
		if err != nil {
			return nil // ctx ended
		}
		for attempt := 1; attempt <= 2; attempt++ {
			runCtx, cancel := context.WithCancel(ctx)
			if chaos && rnd.IntN(10) < 4 {
				r.cuts.Add(1)
				time.AfterFunc(time.Duration(rnd.IntN(150))*time.Millisecond, cancel)
			}
			out, err := handlertest.Run(runCtx, h, handlertest.Job[handlers.FileGCArgs]{RunKey: env.RunKey,
				ScheduledAt: env.ScheduledAt, Attempt: attempt, RunID: c.RunID})
			cancel()
			if res, ok := out.(handlers.FileGCResult); ok {
				r.bySweep.Add(int64(res.DeletedRows))
			}
			if err == nil || !chaos || rnd.IntN(2) == 0 {
				break
			}
		}
		if !chaos {
			return nil
		}
	}
	return nil
}

// eventLoop feeds due events to the event GC's processor until ctx ends; a batch it asks to
// retry goes back to the queue (the broker's redelivery).
func (r *race) eventLoop(ctx context.Context, t *testing.T, rnd *rand.Rand, s3 filereap.ObjectStore, chaos bool) {
	cfg := filegc.Config{Grace: raceGrace, BatchSize: 16}.WithDefaults()
	cfg.S3Timeout = time.Second
	reaper := filereap.NewReaper(r.f.db, s3, filereap.FileTable{}.WithDefaults(), cfg.ReaperOptions, discard)
	if chaos {
		// A GC slow between its shared-object check and its commit (a stalled process, a
		// slow disk): the window a file service write must not slip through.
		reaper.BeforeTombstoneCommit(func(ctx context.Context, _ []int64) { r.s3.pause(ctx) })
	}
	proc := filegc.NewProcessor(cfg, reaper, requeue{r}, r.ledger, "race", nil, time.Now, discard)
	for ctx.Err() == nil {
		batch := r.takeDue(1 + rnd.IntN(cfg.BatchSize))
		if len(batch) == 0 {
			if !chaos {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		procCtx, cancel := context.WithCancel(ctx)
		if chaos && rnd.IntN(10) < 3 {
			r.cuts.Add(1)
			time.AfterFunc(time.Duration(rnd.IntN(100))*time.Millisecond, cancel)
		}
		before := r.collectedByEvents(t)
		v := proc.Process(procCtx, batch)
		cancel()
		r.byEvent.Add(r.collectedByEvents(t) - before)
		if v.Retry {
			r.mu.Lock()
			for _, d := range batch {
				d.ReconsumeTimes++
				r.evq = append(r.evq, queued{d: d, due: time.Now().Add(50 * time.Millisecond)})
			}
			r.mu.Unlock()
		}
	}
}

// collectedByEvents counts gc_log rows of the event GC's batches.
func (r *race) collectedByEvents(t *testing.T) int64 {
	var n int64
	require.NoError(t, r.f.db.QueryRow(context.Background(), `SELECT count(*) FROM gc_log g JOIN job_runs j ON j.id = g.run_id
		WHERE j.job = $1`, filegc.JobName).Scan(&n))
	return n
}

// takeDue removes up to n due events from the queue.
func (r *race) takeDue(n int) []filegc.Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	var out []filegc.Delivery
	rest := r.evq[:0]
	for _, q := range r.evq {
		if len(out) < n && !q.due.After(now) {
			out = append(out, q.d)
		} else {
			rest = append(rest, q)
		}
	}
	r.evq = rest
	return out
}

// heal runs the event GC and the sweep without faults until every event is handled and no
// row is left in status 3 (tombstones younger than s3_timeout wait for their age).
func (r *race) heal(t *testing.T, round int) {
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.eventLoop(ctx, t, rand.New(rand.NewPCG(r.seed, uint64(round)<<8|3)), r.f.b.Client, false)
		require.NoError(t, r.sweepLoop(ctx, rand.New(rand.NewPCG(r.seed, uint64(round)<<8|4)), r.f.b.Client, false))
		var left int
		require.NoError(t, r.f.db.QueryRow(ctx, `SELECT count(*) FROM file_metadata WHERE status = 3`).Scan(&left))
		r.mu.Lock()
		pending := len(r.evq)
		r.mu.Unlock()
		if left == 0 && pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("round %d: %d rows still in status 3 and %d events pending 30s after the faults stopped", round, left, pending)
		}
		time.Sleep(100 * time.Millisecond) // poll: tombstones age past s3_timeout, events reach their grace
	}
}

// faultyS3 is the GCs' S3 under faults: slow, stalled past s3_timeout, deleting and then
// stalling (the object is gone, the GC never hears: what a kill -9 after the delete leaves),
// or holding a delete it accepted and performing it later, after the GC's call returned cut
// (a client's cancel does not stop a multi-delete at the server), at the latest by the call's
// deadline (s3_timeout).
type faultyS3 struct {
	filereap.ObjectStore
	mu     sync.Mutex
	rnd    *rand.Rand
	faults atomic.Int64
	held   sync.WaitGroup // deletes still held at the server
}

func (s *faultyS3) RemoveObjectsWithResult(ctx context.Context, bucket string, objs <-chan minio.ObjectInfo, opts minio.RemoveObjectsOptions) <-chan minio.RemoveObjectResult {
	s.mu.Lock()
	k, delay := s.rnd.IntN(10), time.Duration(s.rnd.IntN(200))*time.Millisecond
	s.mu.Unlock()
	stalled := func() <-chan minio.RemoveObjectResult {
		<-ctx.Done()
		out := make(chan minio.RemoveObjectResult)
		close(out)
		return out
	}
	switch {
	case k < 6:
		return s.ObjectStore.RemoveObjectsWithResult(ctx, bucket, objs, opts)
	case k < 7:
		s.faults.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		return s.ObjectStore.RemoveObjectsWithResult(ctx, bucket, objs, opts)
	case k < 8:
		s.faults.Add(1)
		return stalled()
	case k < 9:
		s.faults.Add(1)
		var keys []minio.ObjectInfo
		for o := range objs {
			keys = append(keys, o)
		}
		s.held.Add(1)
		go s.deleteLater(ctx, bucket, keys, opts)
		return stalled()
	default:
		s.faults.Add(1)
		for range s.ObjectStore.RemoveObjectsWithResult(ctx, bucket, objs, opts) {
		}
		return stalled()
	}
}

// deleteLater deletes keys at a random instant before ctx's deadline, whatever happens to ctx.
func (s *faultyS3) deleteLater(ctx context.Context, bucket string, keys []minio.ObjectInfo, opts minio.RemoveObjectsOptions) {
	defer s.held.Done()
	deadline, ok := ctx.Deadline()
	if !ok {
		return // not a GC's S3 call: nothing bounds it
	}
	// Late in the window: the longest a cut attempt's delete can outlive its call.
	left := max(time.Until(deadline), time.Millisecond)
	s.mu.Lock()
	at := left - time.Duration(s.rnd.Int64N(int64(left/5)+1))
	s.mu.Unlock()
	time.Sleep(at) // the server's own pace, not a test's wait
	ch := make(chan minio.ObjectInfo, len(keys))
	for _, k := range keys {
		ch <- k
	}
	close(ch)
	for range s.ObjectStore.RemoveObjectsWithResult(context.Background(), bucket, ch, opts) {
	}
}

// pause stalls the caller for a random while, half the time.
func (s *faultyS3) pause(ctx context.Context) {
	s.mu.Lock()
	k, d := s.rnd.IntN(2), time.Duration(s.rnd.IntN(30))*time.Millisecond
	s.mu.Unlock()
	if k == 0 {
		return
	}
	s.faults.Add(1)
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// childEnv, set, makes the test binary a sweeper process for killLoop: "dsn|s3 endpoint|seed".
const childEnv = "GC_RACE_SWEEPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(sweeperProcess(spec))
	}
	os.Exit(m.Run())
}

// sweeperProcess runs the sweep under faults, over and over, until it is killed.
func sweeperProcess(spec string) int {
	parts := strings.Split(spec, "|")
	if len(parts) != 3 {
		fmt.Fprintf(os.Stderr, "%s: want dsn|endpoint|seed, got %q\n", childEnv, spec)
		return 2
	}
	seed, err := strconv.ParseUint(parts[2], 10, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: seed: %v\n", childEnv, err)
		return 2
	}
	ctx := context.Background()
	db, err := pgxpool.New(ctx, parts[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "sweeper: connect: %v\n", err)
		return 1
	}
	cli, err := minio.New(parts[1], &minio.Options{Creds: credentials.NewStaticV4(testenv.S3AccessKey(), testenv.S3SecretKey(), "")})
	if err != nil {
		fmt.Fprintf(os.Stderr, "sweeper: s3: %v\n", err)
		return 1
	}
	r := &race{f: &fixture{db: db}, ledger: ledger.New(db), s3: &faultyS3{ObjectStore: cli, rnd: rand.New(rand.NewPCG(seed, 2))}}
	if err := r.sweepLoop(ctx, rand.New(rand.NewPCG(seed, 3)), r.s3, true); err != nil {
		fmt.Fprintf(os.Stderr, "sweeper: %v\n", err)
		return 1
	}
	return 0
}

// killLoop runs sweeper processes (this test binary, childEnv set) and kills each with -9
// after a random while, until ctx ends: a GC process dying at any point of its batches.
func (r *race) killLoop(ctx context.Context, t *testing.T, round int) {
	rnd := rand.New(rand.NewPCG(r.seed, uint64(round)<<8|5))
	for i := 0; ctx.Err() == nil; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%d", childEnv, r.f.dsn, r.f.b.Endpoint, r.seed+uint64(round)<<16+uint64(i)))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if !assert.NoError(t, cmd.Start(), "start a sweeper process") {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(200+rnd.IntN(1300)) * time.Millisecond):
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err == nil {
			r.kills.Add(1)
		}
		err := cmd.Wait()
		var exit *exec.ExitError
		if err != nil && !(errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled()) {
			t.Errorf("sweeper process: %v: %s", err, stderr.String())
		}
	}
}
