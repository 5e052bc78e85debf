package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Lane is one way messages reach the processor, with in-hand tokens of its own. The job lane
// takes the job topic (forced runs, and fires of tickers older than the schedule topic); the
// schedule lane takes the schedule topic, where the ticker publishes fires. Each lane's
// consumer has its own consumer group, goroutines and client cache, and the lanes share the
// processor, its ledger and its handler slots: a fire never waits for a token held by a
// forced run, and where the lanes meet (the group commit, the handler slots) the schedule
// lane goes first.
type Lane int

// Lanes.
const (
	LaneJobs     Lane = iota // the job topic: Config.Goroutines in hand
	LaneSchedule             // the schedule topic: Config.ScheduleGoroutines in hand, first at the ledger and the slots
)

// String names the lane in logs.
func (l Lane) String() string {
	if l == LaneSchedule {
		return "schedule"
	}
	return "jobs"
}

// slotGate bounds the handlers running at once (max_running) and hands a freed slot to the
// longest waiting run of the schedule lane before any other: a fire must not wait for the
// runs of a forced backlog that were waiting for a slot before it.
type slotGate struct {
	mu    sync.Mutex
	free  int
	first []chan struct{} // waiting runs of the schedule lane, oldest first
	rest  []chan struct{} // the other waiting runs, oldest first
}

func newSlotGate(n int) *slotGate { return &slotGate{free: n} }

// wait asks for a slot. granted is closed once the slot is the caller's, who then must
// release it; a caller that stops waiting calls abandon, which reports whether the slot was
// granted meanwhile (and must then be released).
func (g *slotGate) wait(first bool) (granted <-chan struct{}, abandon func() bool) {
	ch := make(chan struct{})
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.free > 0 && len(g.first) == 0 && (first || len(g.rest) == 0) {
		g.free--
		close(ch)
		return ch, func() bool { return true }
	}
	q := &g.rest
	if first {
		q = &g.first
	}
	*q = append(*q, ch)
	return ch, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		for i, c := range *q {
			if c == ch {
				*q = append((*q)[:i], (*q)[i+1:]...)
				return false
			}
		}
		return true // granted before it was abandoned
	}
}

// release gives a slot back: to the oldest waiting fire, else the oldest other waiter.
func (g *slotGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, q := range []*[]chan struct{}{&g.first, &g.rest} {
		if len(*q) > 0 {
			ch := (*q)[0]
			*q = (*q)[1:]
			close(ch)
			return
		}
	}
	g.free++
}

// holdUntil waits until at, for a run claimed while its early message was held (see
// Process); at once for any other. It returns why the run must not start when the drain
// begins or the run's context ends first (an operator's cancel, a lost claim).
func (p *Processor) holdUntil(ctx context.Context, cancel context.CancelCauseFunc, at time.Time) error {
	wait := at.Sub(p.now())
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-p.drained:
		cancel(errDraining)
		return errors.New("not started: node is shutting down")
	case <-ctx.Done():
		return fmt.Errorf("not started: %w", context.Cause(ctx))
	}
}
