package peers_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/bench/peers/peerjobs"
	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/mq"
)

// Takeover after kill -9: a long job starts on a worker process, that process is killed with
// SIGKILL, and the figure is the time from the kill to the job's next attempt starting on the
// surviving worker (the surviving worker's own clock; one host, one clock). Each system runs
// with the settings it ships with for noticing a dead worker, named in the sub-benchmark.
func BenchmarkTakeover(b *testing.B) {
	// Production timings: heartbeat 5 s, stale_after 30 s, repair_interval 10 s.
	b.Run("jobservice/stale=30s_heartbeat=5s_repair=10s", func(b *testing.B) {
		jobServiceTakeover(b, 5*time.Second, 30*time.Second, 10*time.Second)
	})
	b.Run("jobservice/stale=5s_heartbeat=1s_repair=1s", func(b *testing.B) {
		jobServiceTakeover(b, time.Second, 5*time.Second, time.Second)
	})
	// River has no heartbeat: a running job is rescued once it has run RescueStuckJobsAfter
	// (default 1 h), so it must exceed the longest job. 30 s (job 20 s, JobTimeout 25 s) puts
	// it beside job-service's stale_after.
	b.Run("river/rescue_after=30s", func(b *testing.B) { riverTakeover(b, 30*time.Second, 25*time.Second, 20_000) })
	// Asynq: 30 s lease kept by heartbeats, recoverer every minute, then the retry delay.
	b.Run("asynq/defaults", func(b *testing.B) { asynqTakeover(b) })
}

func jobServiceTakeover(b *testing.B, heartbeat, stale, repair time.Duration) {
	testenv.Integration(b)
	ctx := context.Background()
	sch, m := jobServiceWorld(b)
	s := chaos.Settings{DSN: sch.DSN, MQ: m.Config, LeaseKey: time.Now().UnixNano() & 0x7fffffff,
		Ticker: true, Interval: time.Second, Lookahead: 30 * time.Second, Misfire: 10 * time.Second,
		Repair: repair, Heartbeat: heartbeat, StaleAfter: stale}
	s.MQ.QueueNums = jobServiceQueues
	c := chaos.NewCluster(b, testnode(b), s)
	prod, err := mq.NewProducer(m.Config, "peers-"+testenv.Suffix())
	require.NoError(b, err)
	b.Cleanup(func() { _ = prod.Close() })
	for b.Loop() {
		procs := map[string]*chaos.Proc{"a": c.Start("a", nil), "b": c.Start("b", nil)}
		key := "manual:takeover-" + testenv.Suffix()
		env := job.Envelope{Job: chaos.ProbeKind, RunKey: key, Trigger: job.TriggerManual, ScheduledAt: time.Now().UTC(),
			Shard: job.Shard{Total: 1}, Params: []byte(`{"sleep_ms": 300000}`), RequestedBy: "peers"}
		_, err := prod.Publish(ctx, env, time.Time{})
		require.NoError(b, err)
		var node string
		testenv.Eventually(b, time.Minute, func() bool {
			err := sch.Pool.QueryRow(ctx, `SELECT node FROM job_runs WHERE run_key = $1 AND status = 'running'`, key).Scan(&node)
			return err == nil && node != ""
		}, "the long run to start")
		victim := procs[node]
		require.NotNil(b, victim, "run on unknown node %q", node)
		killed := time.Now()
		victim.Kill()
		var started time.Time
		var by string
		testenv.Eventually(b, 5*time.Minute, func() bool {
			err := sch.Pool.QueryRow(ctx, `SELECT started_at, node FROM job_runs WHERE run_key = $1
				AND status = 'running' AND attempt > 1`, key).Scan(&started, &by)
			return err == nil
		}, "the run to start again")
		require.NotEqual(b, node, by)
		b.ReportMetric(started.Sub(killed).Seconds(), "takeover_s")
		b.Logf("killed node %s; attempt 2 started on %s %.2f s later; load average %s", node, by,
			started.Sub(killed).Seconds(), loadAverage())
		for _, p := range procs {
			if p.Alive() {
				p.Kill()
			}
		}
	}
}

// starts collects the attempts the surviving worker begins.
type starts struct {
	mu sync.Mutex
	at map[string]time.Time // id -> first start seen
	ch chan struct{}
}

func newStarts() *starts { return &starts{at: map[string]time.Time{}, ch: make(chan struct{}, 16)} }

func (s *starts) add(id string, _ int) {
	s.mu.Lock()
	if _, ok := s.at[id]; !ok {
		s.at[id] = time.Now()
	}
	s.mu.Unlock()
	select {
	case s.ch <- struct{}{}:
	default:
	}
}

func (s *starts) wait(b *testing.B, id string, timeout time.Duration) time.Time {
	b.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		t, ok := s.at[id]
		s.mu.Unlock()
		if ok {
			return t
		}
		select {
		case <-s.ch:
		case <-deadline:
			b.Fatalf("job %s did not start on the surviving worker within %s", id, timeout)
		}
	}
}

func riverTakeover(b *testing.B, rescueAfter, jobTimeout time.Duration, sleepMS int) {
	testenv.Integration(b)
	ctx := context.Background()
	sch := testenv.NewSchema(b)
	mig, err := rivermigrate.New(riverpgxv5.New(sch.Pool), nil)
	require.NoError(b, err)
	_, err = mig.Migrate(ctx, rivermigrate.DirectionUp, nil)
	require.NoError(b, err)
	for b.Loop() {
		victim := startPeerWorker(b, "-system", "river", "-dsn", sch.DSN,
			"-rescue-after", rescueAfter.String(), "-job-timeout", jobTimeout.String())
		// An insert-only client: no queues, no workers.
		inserter, err := river.NewClient(riverpgxv5.New(sch.Pool), &river.Config{Logger: quietLogger()})
		require.NoError(b, err)
		res, err := inserter.Insert(ctx, peerjobs.LongArgs{SleepMS: sleepMS}, nil)
		require.NoError(b, err)
		id := fmt.Sprint(res.Job.ID)
		victim.waitLine(b, "start "+id+" ", time.Minute)

		got := newStarts()
		workers := river.NewWorkers()
		river.AddWorker(workers, &peerjobs.LongWorker{OnStart: got.add})
		survivor, err := river.NewClient(riverpgxv5.New(sch.Pool), &river.Config{
			Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
			Workers:              workers,
			RescueStuckJobsAfter: rescueAfter,
			JobTimeout:           jobTimeout,
			Logger:               quietLogger(),
		})
		require.NoError(b, err)
		require.NoError(b, survivor.Start(ctx))
		killed := victim.kill(b)
		started := got.wait(b, id, 5*time.Minute)
		b.ReportMetric(started.Sub(killed).Seconds(), "takeover_s")
		b.Logf("River job %s started again %.2f s after kill -9; load average %s", id, started.Sub(killed).Seconds(), loadAverage())
		stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_ = survivor.StopAndCancel(stopCtx)
		cancel()
	}
}

func asynqTakeover(b *testing.B) {
	testenv.Integration(b)
	redis := asynq.RedisClientOpt{Addr: testenv.RedisAddr()}
	queue := "peers-takeover-" + testenv.Suffix()
	b.Cleanup(func() { dropAsynqQueue(b, redis, queue) })
	client := asynq.NewClient(redis)
	b.Cleanup(func() { _ = client.Close() })
	for b.Loop() {
		victim := startPeerWorker(b, "-system", "asynq", "-redis", testenv.RedisAddr(), "-queue", queue)
		task, err := peerjobs.AsynqTask(600_000)
		require.NoError(b, err)
		info, err := client.Enqueue(task, asynq.Queue(queue), asynq.Timeout(30*time.Minute))
		require.NoError(b, err)
		victim.waitLine(b, "start "+info.ID+" ", time.Minute)

		got := newStarts()
		mux := asynq.NewServeMux()
		mux.Handle(peerjobs.LongKind, peerjobs.AsynqHandler(got.add))
		srv := asynq.NewServer(redis, asynq.Config{Concurrency: 10, Queues: map[string]int{queue: 1}, LogLevel: asynq.ErrorLevel})
		require.NoError(b, srv.Start(mux))
		killed := victim.kill(b)
		started := got.wait(b, info.ID, 5*time.Minute)
		b.ReportMetric(started.Sub(killed).Seconds(), "takeover_s")
		b.Logf("Asynq task %s started again %.2f s after kill -9; load average %s", info.ID, started.Sub(killed).Seconds(), loadAverage())
		srv.Shutdown()
	}
}

var (
	workerOnce sync.Once
	workerBin  string
	workerErr  error
)

// peerWorker is a running cmd/peerworker process.
type peerWorker struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	more  chan struct{}
	done  chan struct{}
}

// startPeerWorker builds cmd/peerworker once and starts it with args; it returns once the
// worker printed "ready".
func startPeerWorker(b *testing.B, args ...string) *peerWorker {
	b.Helper()
	workerOnce.Do(func() {
		dir, err := os.MkdirTemp("", "jobsvc-peerworker-")
		if err != nil {
			workerErr = err
			return
		}
		workerBin = filepath.Join(dir, "peerworker")
		out, err := exec.Command("go", "build", "-o", workerBin, "./cmd/peerworker").CombinedOutput()
		if err != nil {
			workerErr = fmt.Errorf("go build peerworker: %w\n%s", err, out)
		}
	})
	require.NoError(b, workerErr)
	cmd := exec.Command(workerBin, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(b, err)
	require.NoError(b, cmd.Start())
	w := &peerWorker{cmd: cmd, more: make(chan struct{}, 1), done: make(chan struct{})}
	go w.read(stdout)
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-w.done
	})
	w.waitLine(b, "ready", time.Minute)
	return w
}

func (w *peerWorker) read(r io.Reader) {
	defer close(w.done)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		w.mu.Lock()
		w.lines = append(w.lines, sc.Text())
		w.mu.Unlock()
		select {
		case w.more <- struct{}{}:
		default:
		}
	}
	_ = w.cmd.Wait()
}

// waitLine waits for a line starting with prefix.
func (w *peerWorker) waitLine(b *testing.B, prefix string, timeout time.Duration) {
	b.Helper()
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		for _, l := range w.lines {
			if strings.HasPrefix(l+" ", prefix) {
				w.mu.Unlock()
				return
			}
		}
		w.mu.Unlock()
		select {
		case <-w.more:
		case <-w.done:
			b.Fatalf("peerworker exited before printing %q", prefix)
		case <-deadline:
			b.Fatalf("peerworker did not print %q within %s", prefix, timeout)
		}
	}
}

// kill sends SIGKILL and returns the moment it was sent, once the process is gone.
func (w *peerWorker) kill(b *testing.B) time.Time {
	b.Helper()
	at := time.Now()
	require.NoError(b, w.cmd.Process.Signal(syscall.SIGKILL))
	<-w.done
	return at
}
