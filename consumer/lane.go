package consumer

import "github.com/chatplat/job-service/ledger"

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

// priority is the lane's place in the group commit's queue.
func (l Lane) priority() ledger.Priority {
	if l == LaneSchedule {
		return ledger.First
	}
	return ledger.InTurn
}

// slotGate bounds the handlers running at once (max_running) and hands a freed slot to the
// longest waiting run of the schedule lane before any other: a fire must not wait for the
// runs of a forced backlog that were waiting for a slot before it. A waiting run is an entry
// in a queue, not a goroutine. Guarded by Processor.mu.
type slotGate struct {
	free  int
	first []*run // waiting runs of the schedule lane, oldest first
	rest  []*run // the other waiting runs, oldest first
}

// take takes a free slot, unless runs that go before one of lane first wait for it.
func (g *slotGate) take(first bool) bool {
	if g.free > 0 && len(g.first) == 0 && (first || len(g.rest) == 0) {
		g.free--
		return true
	}
	return false
}

// queue makes r wait for the next slot.
func (g *slotGate) queue(r *run) {
	if r.lane == LaneSchedule {
		g.first = append(g.first, r)
		return
	}
	g.rest = append(g.rest, r)
}

// remove takes r out of its queue, if it waits there.
func (g *slotGate) remove(r *run) {
	for _, q := range []*[]*run{&g.first, &g.rest} {
		for i, w := range *q {
			if w == r {
				*q = append((*q)[:i], (*q)[i+1:]...)
				return
			}
		}
	}
}

// release gives a slot back and returns the run it goes to (the oldest waiting fire, else
// the oldest other waiter), which must be started; nil when none waits and the slot is free.
func (g *slotGate) release() *run {
	for _, q := range []*[]*run{&g.first, &g.rest} {
		if len(*q) > 0 {
			r := (*q)[0]
			(*q)[0] = nil
			*q = (*q)[1:]
			return r
		}
	}
	g.free++
	return nil
}
