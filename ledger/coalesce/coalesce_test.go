package coalesce

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAloneCallIsSentAtOnceAndAlone(t *testing.T) {
	var sizes, observed []int
	b := New(func(_ context.Context, reqs []int) ([]int, error) {
		sizes = append(sizes, len(reqs))
		out := make([]int, len(reqs))
		for i, r := range reqs {
			out[i] = r * 10
		}
		return out, nil
	}, Options{MaxBatch: 64, Flushers: 1, Observe: func(size int, _ time.Duration, err error) {
		require.NoError(t, err)
		observed = append(observed, size)
	}})
	for i := range 3 {
		got, err := b.Do(context.Background(), i)
		require.NoError(t, err)
		require.Equal(t, i*10, got)
	}
	require.Equal(t, []int{1, 1, 1}, sizes, "sequential calls never wait for company")
	require.Equal(t, sizes, observed)
}

// While a flush is blocked, callers queue; they leave together, each gets its own result,
// and no batch exceeds the maximum.
func TestCallsDuringAFlushLeaveTogetherEachWithItsResult(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	b := New(func(_ context.Context, reqs []int) ([]int, error) {
		mu.Lock()
		sizes = append(sizes, len(reqs))
		first := len(sizes) == 1
		mu.Unlock()
		if first {
			<-release
		}
		out := make([]int, len(reqs))
		for i, r := range reqs {
			out[i] = -r
		}
		return out, nil
	}, Options{MaxBatch: 4, Flushers: 1})

	results := make([]int, 11)
	var wg sync.WaitGroup
	do := func(i int) {
		defer wg.Done()
		got, err := b.Do(context.Background(), i)
		require.NoError(t, err)
		results[i] = got
	}
	wg.Add(1)
	go do(0)
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == 1 }, time.Second, time.Millisecond)
	for i := 1; i < 11; i++ {
		wg.Add(1)
		go do(i)
	}
	require.Eventually(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.pending) == 10 }, time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	for i, r := range results {
		require.Equal(t, -i, r)
	}
	require.Equal(t, []int{1, 4, 4, 2}, sizes)
}

func TestBatchErrorReachesEveryCaller(t *testing.T) {
	boom := errors.New("database is down")
	b := New(func(context.Context, []int) ([]int, error) { return nil, boom }, Options{MaxBatch: 8, Flushers: 2})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.Do(context.Background(), i)
			require.ErrorIs(t, err, boom)
		}()
	}
	wg.Wait()
}

func TestShortResultAndPanicAreErrorsNotHangs(t *testing.T) {
	short := New(func(context.Context, []int) ([]int, error) { return nil, nil }, Options{MaxBatch: 8, Flushers: 1})
	_, err := short.Do(context.Background(), 1)
	require.ErrorIs(t, err, errShortResult)

	panicky := New(func(context.Context, []int) ([]int, error) { panic("bug") }, Options{MaxBatch: 8, Flushers: 1})
	_, err = panicky.Do(context.Background(), 1)
	require.ErrorContains(t, err, "panicked: bug")
	// The batcher still works afterwards.
	_, err = panicky.Do(context.Background(), 2)
	require.ErrorContains(t, err, "panicked")
}

func TestCancelledContextIsNotQueued(t *testing.T) {
	var calls atomic.Int32
	b := New(func(_ context.Context, reqs []int) ([]int, error) { calls.Add(1); return reqs, nil }, Options{MaxBatch: 8, Flushers: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := b.Do(ctx, 1)
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, calls.Load())
}

// The flushers limit holds under load, and every flusher goroutine exits when idle.
func TestFlushersBoundedAndExitWhenIdle(t *testing.T) {
	var inFlight, peak atomic.Int32
	b := New(func(_ context.Context, reqs []int) ([]int, error) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(time.Millisecond)
		inFlight.Add(-1)
		return reqs, nil
	}, Options{MaxBatch: 8, Flushers: 3})
	var wg sync.WaitGroup
	for i := range 500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := b.Do(context.Background(), i)
			require.NoError(t, err)
			require.Equal(t, i, got)
		}()
	}
	wg.Wait()
	require.LessOrEqual(t, peak.Load(), int32(3))
	require.Eventually(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.active == 0 }, time.Second, time.Millisecond)
}

// A caller holding many requests queues them at once: each gets its own result, an error of
// one flush reaches only the requests of that flush, and no flush exceeds the maximum.
func TestDoEachSplitsIntoBatchesAndAnswersEachRequest(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sizes []int
	b := New(func(_ context.Context, reqs []int) ([]int, error) {
		mu.Lock()
		sizes = append(sizes, len(reqs))
		mu.Unlock()
		for _, r := range reqs {
			if r == 13 {
				return nil, errors.New("thirteen")
			}
		}
		out := make([]int, len(reqs))
		for i, r := range reqs {
			out[i] = r * 10
		}
		return out, nil
	}, Options{MaxBatch: 4, Flushers: 2})
	reqs := make([]int, 10)
	for i := range reqs {
		reqs[i] = i + 10 // 13 fails its flush
	}
	res, errs := b.DoEach(context.Background(), reqs)
	failed := 0
	for i, r := range reqs {
		if errs[i] != nil {
			failed++
			continue
		}
		require.Equal(t, r*10, res[i])
	}
	require.Error(t, errs[3], "the request that fails its flush")
	require.LessOrEqual(t, failed, 4, "only the flush holding 13 failed")
	total := 0
	for _, s := range sizes {
		require.LessOrEqual(t, s, 4)
		total += s
	}
	require.Equal(t, 10, total)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, errs = b.DoEach(ctx, []int{1, 2})
	require.ErrorIs(t, errs[0], context.Canceled)
	require.ErrorIs(t, errs[1], context.Canceled)
}

// A first call made while every flusher is busy and a backlog waits leaves at once, alone,
// in the express flush, before the backlog; and first calls queued while the express flush is
// busy lead the next batch, ahead of every pending call.
func TestFirstCallsOvertakeTheBacklog(t *testing.T) {
	releaseNormal, releaseExpress := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var batches [][]int
	b := New(func(_ context.Context, reqs []int) ([]int, error) {
		mu.Lock()
		batches = append(batches, append([]int(nil), reqs...))
		mu.Unlock()
		switch reqs[0] {
		case 0:
			<-releaseNormal
		case 100:
			<-releaseExpress
		}
		return reqs, nil
	}, Options{MaxBatch: 4, Flushers: 1})
	flushes := func() int { mu.Lock(); defer mu.Unlock(); return len(batches) }
	queued := func(q *[]call[int, int], n int) func() bool {
		return func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(*q) == n }
	}

	var wg sync.WaitGroup
	wg.Go(func() { _, _ = b.Do(context.Background(), 0) })
	require.Eventually(t, func() bool { return flushes() == 1 }, 5*time.Second, time.Millisecond)
	for i := 1; i <= 6; i++ { // the backlog: queued behind the blocked flush
		wg.Go(func() { _, _ = b.Do(context.Background(), i) })
	}
	require.Eventually(t, queued(&b.pending, 6), 5*time.Second, time.Millisecond)

	wg.Go(func() {
		got, err := b.DoFirst(context.Background(), 100)
		require.NoError(t, err)
		require.Equal(t, 100, got)
	})
	require.Eventually(t, func() bool { return flushes() == 2 }, 5*time.Second, time.Millisecond,
		"the first call is flushed while the only flusher is still busy")

	// Both flushers busy now: these wait, and must lead the next batch.
	wg.Go(func() {
		_, errs := b.DoEachFirst(context.Background(), []int{101, 102})
		require.Equal(t, []error{nil, nil}, errs)
	})
	require.Eventually(t, queued(&b.first, 2), 5*time.Second, time.Millisecond)
	close(releaseNormal)
	require.Eventually(t, func() bool { return flushes() == 4 }, 5*time.Second, time.Millisecond)
	close(releaseExpress)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, batches, 4)
	require.Equal(t, [][]int{{0}, {100}}, batches[:2])
	require.Equal(t, []int{101, 102}, batches[2][:2], "the first calls lead the next batch: %v", batches)
	require.ElementsMatch(t, []int{1, 2, 3, 4, 5, 6}, append(append([]int(nil), batches[2][2:]...), batches[3]...))
	b.mu.Lock()
	defer b.mu.Unlock()
	require.False(t, b.express, "the express flusher exits once no first call waits")
	require.Zero(t, b.active)
}
