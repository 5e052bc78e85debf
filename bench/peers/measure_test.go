package peers_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/chatplat/job-service/internal/testenv"
)

// Measurement helpers shared by the precision and takeover benchmarks.

// precisionFires is how many fires a precision figure is taken over (at least 1,000).
const precisionFires = 1000

// tickJobs is how many jobs fire every second in each system: 1,000 fires take 50 s.
const tickJobs = 20

// loadRate is the forced work per second offered to the same worker while the fires are
// measured under load: PEERS_LOAD_RATE, default 5,000.
func loadRate(b *testing.B) int { return testenv.EnvInt(b, "PEERS_LOAD_RATE", 5000) }

// delays collects fire time -> handler start of the fires at or after from, keyed so a fire
// seen twice (a redelivery) counts once, its first start.
type delays struct {
	mu       sync.Mutex
	from, to time.Time
	fires    map[string]time.Duration
}

func newDelays() *delays { return &delays{fires: map[string]time.Duration{}} }

// window counts the fires due in [from, to) from now on.
func (d *delays) window(from, to time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.from, d.to = from, to
}

// add records one handler start of the fire key due at fire.
func (d *delays) add(key string, fire, start time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.from.IsZero() || fire.Before(d.from) || !fire.Before(d.to) {
		return
	}
	if _, seen := d.fires[key]; !seen {
		d.fires[key] = start.Sub(fire)
	}
}

func (d *delays) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.fires)
}

// sorted returns the delays recorded, shortest first.
func (d *delays) sorted() []time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]time.Duration, 0, len(d.fires))
	for _, v := range d.fires {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// waitFires waits until n fires have started or timeout passes; it returns how many did.
func waitFires(count func() int, n int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		k := count()
		if k >= n || time.Now().After(deadline) {
			return k
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// reportDelays reports p50/p99/max/min over the delays; missing fires (due in the window but
// never started within the wait) are reported apart, never as a figure they did not reach.
func reportDelays(b *testing.B, sorted []time.Duration, missing int) {
	b.Helper()
	if len(sorted) == 0 {
		b.ReportMetric(float64(missing), "fires_missing")
		b.Errorf("no fire started")
		return
	}
	b.ReportMetric(ms(percentile(sorted, 0.50)), "p50_ms")
	b.ReportMetric(ms(percentile(sorted, 0.99)), "p99_ms")
	b.ReportMetric(ms(sorted[len(sorted)-1]), "max_ms")
	b.ReportMetric(ms(sorted[0]), "min_ms")
	b.ReportMetric(float64(len(sorted)), "fires")
	b.ReportMetric(float64(missing), "fires_missing")
	b.Logf("load average at the end: %s", loadAverage())
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loadAverage is /proc/loadavg's first three fields: the machine is shared, so every figure
// says how busy it was.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// load offers rate jobs per second, in sends of batch jobs from workers goroutines, until
// stopped. A send the workers cannot keep up with is dropped rather than queued, so
// sent/elapsed is the rate actually offered.
type load struct {
	sent    atomic.Int64
	failed  atomic.Int64
	started time.Time
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	err     atomic.Value
}

func startLoad(rate, workers, batch int, send func(ctx context.Context, first int64, n int) error) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, started: time.Now()}
	tokens := make(chan int64, rate)
	const tick = 10 * time.Millisecond
	per := rate / int(time.Second/tick) / batch
	l.wg.Go(func() {
		defer close(tokens)
		t := time.NewTicker(tick)
		defer t.Stop()
		var i int64
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			for range per {
				select {
				case tokens <- i:
					i += int64(batch)
				default: // the senders are behind: offer less rather than build a queue here
				}
			}
		}
	})
	for range workers {
		l.wg.Go(func() {
			for i := range tokens {
				if err := send(ctx, i, batch); err != nil {
					if ctx.Err() != nil {
						return
					}
					l.failed.Add(1)
					l.err.Store(err)
					continue
				}
				l.sent.Add(int64(batch))
			}
		})
	}
	return l
}

// stop ends the load and returns the rate it offered; it logs the last send error, if any.
func (l *load) stop(b *testing.B) float64 {
	elapsed := time.Since(l.started)
	l.cancel()
	l.wg.Wait()
	if err, ok := l.err.Load().(error); ok {
		b.Logf("%d load sends failed; the last: %v", l.failed.Load(), err)
	}
	return float64(l.sent.Load()) / elapsed.Seconds()
}

// rssWatch samples a process's VmRSS every 250 ms; peak returns the largest sample and the
// kernel's own high-water mark (VmHWM), in MiB.
type rssWatch struct {
	pid    int
	maxKiB atomic.Int64
	stopCh chan struct{}
	done   chan struct{}
}

func watchRSS(pid int) *rssWatch {
	w := &rssWatch{pid: pid, stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := procStatusKiB(pid, "VmRSS:"); err == nil && v > w.maxKiB.Load() {
				w.maxKiB.Store(v)
			}
			select {
			case <-w.stopCh:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

func (w *rssWatch) peak() (sampledMiB, hwmMiB float64) {
	close(w.stopCh)
	<-w.done
	hwm, _ := procStatusKiB(w.pid, "VmHWM:")
	return float64(w.maxKiB.Load()) / 1024, float64(hwm) / 1024
}

// procStatusKiB reads one kB field of /proc/<pid>/status.
func procStatusKiB(pid int, field string) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			return strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// everySecond is a schedule firing on every whole second (what "* * * * * *" is to our ticker
// and "@every 1s" to Asynq's scheduler), for River's periodic jobs.
type everySecond struct{}

// Next is the whole second after t.
func (everySecond) Next(t time.Time) time.Time { return t.Truncate(time.Second).Add(time.Second) }

// dropAsynqQueue removes every key of an Asynq queue. Inspector.DeleteQueue(queue, true) left
// queues of a few hundred thousand completed tasks in place here, and the shared Redis has a
// 256 MB maxmemory with noeviction: the next benchmark's enqueues then fail with OOM.
func dropAsynqQueue(b *testing.B, opt asynq.RedisClientOpt, queue string) {
	rdb, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		b.Logf("drop asynq queue %s: not a go-redis client", queue)
		return
	}
	defer rdb.Close()
	ctx := context.Background()
	it := rdb.Scan(ctx, 0, "asynq:{"+queue+"}*", 1000).Iterator()
	var keys []string
	flush := func() {
		if len(keys) > 0 {
			if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
				b.Logf("drop asynq queue %s: %v", queue, err)
			}
			keys = keys[:0]
		}
	}
	for it.Next(ctx) {
		if keys = append(keys, it.Val()); len(keys) == 1000 {
			flush()
		}
	}
	flush()
	if err := it.Err(); err != nil {
		b.Logf("drop asynq queue %s: %v", queue, err)
	}
	_ = rdb.SRem(ctx, "asynq:queues", queue).Err()
}
