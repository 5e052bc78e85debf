// Package coalesce merges concurrent calls into batches (group commit). A call made while no
// batch is in flight is sent at once, alone; calls that arrive while flushers are busy wait
// and leave together in the next batch. Batches therefore grow with load and cost nothing
// when the system is idle: there is no timer and no linger.
package coalesce

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// errShortResult means a Flush returned fewer results than requests: a bug in the Flush.
var errShortResult = errors.New("coalesce: flush returned no result for this request")

// Flush executes one batch. It returns one result per request, in order, or an error that
// applies to the whole batch.
type Flush[Req, Res any] func(ctx context.Context, reqs []Req) ([]Res, error)

// Batcher coalesces calls to a Flush. It is safe for concurrent use and needs no Close: its
// flusher goroutines exit as soon as nothing is pending.
type Batcher[Req, Res any] struct {
	flush Flush[Req, Res]
	opts  Options

	mu      sync.Mutex
	pending []call[Req, Res]
	active  int
	// first holds the calls of DoFirst and DoEachFirst: every flush takes them before any of
	// pending. express is set while the one flusher above Flushers that only flushes first
	// runs (see DoFirst).
	first   []call[Req, Res]
	express bool
}

type call[Req, Res any] struct {
	req  Req
	done chan outcome[Res]
}

type outcome[Res any] struct {
	res Res
	err error
}

// Options shape a Batcher.
type Options struct {
	// MaxBatch bounds the requests in one flush (at least 1).
	MaxBatch int
	// Flushers bounds the flushes running at once (at least 1), but for the one express
	// flush of calls queued by DoFirst or DoEachFirst while all Flushers are busy.
	Flushers int
	// NewContext makes the context of each flush: a batch serves several callers, so it
	// cannot use any one caller's context. Default: context.Background, no deadline.
	NewContext func() (context.Context, context.CancelFunc)
	// Observe, when set, is told the size, duration and error of every flush.
	Observe func(size int, took time.Duration, err error)
}

// New returns a batcher of calls to flush.
func New[Req, Res any](flush Flush[Req, Res], opts Options) *Batcher[Req, Res] {
	opts.MaxBatch, opts.Flushers = max(opts.MaxBatch, 1), max(opts.Flushers, 1)
	if opts.NewContext == nil {
		opts.NewContext = func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }
	}
	return &Batcher[Req, Res]{flush: flush, opts: opts}
}

// Do queues req and waits for its result. ctx is checked only before queuing: once queued,
// Do waits for the batch even if ctx ends, so a request that reached the database is never
// mistaken for one that did not.
func (b *Batcher[Req, Res]) Do(ctx context.Context, req Req) (Res, error) {
	c := call[Req, Res]{req: req, done: make(chan outcome[Res], 1)}
	b.mu.Lock()
	if err := ctx.Err(); err != nil {
		b.mu.Unlock()
		var zero Res
		return zero, err
	}
	b.pending = append(b.pending, c)
	if b.active < b.opts.Flushers {
		b.active++
		go b.run()
	}
	b.mu.Unlock()
	o := <-c.done
	return o.res, o.err
}

// DoEach queues every request of reqs at once and waits for all their results: the calls of
// a caller that already holds a batch (a batch of delivered messages) leave together, and
// with whatever other callers queued, in as few flushes as MaxBatch allows. errs[i] is the
// error of reqs[i] (ctx's error for all when ctx ended before queuing).
func (b *Batcher[Req, Res]) DoEach(ctx context.Context, reqs []Req) (res []Res, errs []error) {
	calls, err := b.queue(ctx, reqs, func(calls []call[Req, Res]) {
		b.pending = append(b.pending, calls...)
		// One flusher at once, as for Do, and more while the queued calls fill their batches.
		if b.active < b.opts.Flushers {
			b.active++
			go b.run()
		}
		for b.active < b.opts.Flushers && b.active*b.opts.MaxBatch < len(b.pending) {
			b.active++
			go b.run()
		}
	})
	return wait(len(reqs), calls, err)
}

// queue makes the calls of reqs and, holding b.mu, hands them to place, which queues them and
// starts flushers; it queues nothing and returns ctx's error when ctx has ended.
func (b *Batcher[Req, Res]) queue(ctx context.Context, reqs []Req, place func([]call[Req, Res])) ([]call[Req, Res], error) {
	calls := make([]call[Req, Res], len(reqs))
	for i, r := range reqs {
		calls[i] = call[Req, Res]{req: r, done: make(chan outcome[Res], 1)}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	place(calls)
	return calls, nil
}

// wait returns the results of n queued calls, or err for each when they were not queued.
func wait[Req, Res any](n int, calls []call[Req, Res], err error) (res []Res, errs []error) {
	res, errs = make([]Res, n), make([]error, n)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return res, errs
	}
	for i, c := range calls {
		o := <-c.done
		res[i], errs[i] = o.res, o.err
	}
	return res, errs
}

// DoFirst is Do for a call that must not wait behind the queue: it leaves in the next flush,
// ahead of every call queued by Do or DoEach, and when all Flushers are busy it does not wait
// for one of them to finish: one more flusher (never more than one) sends the calls queued
// first. So a first call waits for one statement at most, its own, whatever the backlog.
func (b *Batcher[Req, Res]) DoFirst(ctx context.Context, req Req) (Res, error) {
	res, errs := b.DoEachFirst(ctx, []Req{req})
	return res[0], errs[0]
}

// DoEachFirst is DoEach with the priority of DoFirst for every request of reqs.
func (b *Batcher[Req, Res]) DoEachFirst(ctx context.Context, reqs []Req) (res []Res, errs []error) {
	calls, err := b.queue(ctx, reqs, func(calls []call[Req, Res]) {
		b.first = append(b.first, calls...)
		switch {
		case b.active < b.opts.Flushers:
			b.active++
			go b.run()
		case !b.express:
			b.express = true
			go b.runFirst()
		}
	})
	return wait(len(reqs), calls, err)
}

// run flushes pending batches, first calls first, until none is left.
func (b *Batcher[Req, Res]) run() {
	for {
		b.mu.Lock()
		batch := b.take()
		if batch == nil {
			b.active--
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.send(batch)
	}
}

// runFirst is the express flusher: it flushes only the calls queued first, then exits.
func (b *Batcher[Req, Res]) runFirst() {
	for {
		b.mu.Lock()
		if len(b.first) == 0 {
			b.express = false
			b.mu.Unlock()
			return
		}
		batch := takeFrom(&b.first, b.opts.MaxBatch)
		b.mu.Unlock()
		b.send(batch)
	}
}

// take removes the next batch (first calls, then pending ones to fill it) under b.mu; nil
// when nothing waits.
func (b *Batcher[Req, Res]) take() []call[Req, Res] {
	if len(b.first) == 0 && len(b.pending) == 0 {
		return nil
	}
	batch := takeFrom(&b.first, b.opts.MaxBatch)
	return append(batch, takeFrom(&b.pending, b.opts.MaxBatch-len(batch))...)
}

// takeFrom removes up to n calls from the front of *q.
func takeFrom[Req, Res any](q *[]call[Req, Res], n int) []call[Req, Res] {
	n = min(n, len(*q))
	if n <= 0 {
		return nil
	}
	batch := make([]call[Req, Res], n)
	copy(batch, *q)
	*q = append((*q)[:0], (*q)[n:]...)
	return batch
}

func (b *Batcher[Req, Res]) send(batch []call[Req, Res]) {
	reqs := make([]Req, len(batch))
	for i, c := range batch {
		reqs[i] = c.req
	}
	start := time.Now()
	res, err := b.flushSafely(reqs)
	if b.opts.Observe != nil {
		b.opts.Observe(len(reqs), time.Since(start), err)
	}
	for i, c := range batch {
		switch {
		case err != nil:
			c.done <- outcome[Res]{err: err}
		case i < len(res):
			c.done <- outcome[Res]{res: res[i]}
		default:
			c.done <- outcome[Res]{err: errShortResult}
		}
	}
}

// flushSafely turns a panic in flush into an error for every caller of the batch: the
// callers are blocked on it and would otherwise wait forever in a dying process.
func (b *Batcher[Req, Res]) flushSafely(reqs []Req) (res []Res, err error) {
	ctx, cancel := b.opts.NewContext()
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("coalesce: flush panicked: %v", r)
		}
	}()
	return b.flush(ctx, reqs)
}
