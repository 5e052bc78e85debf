package consumer

import (
	"context"
	"time"
)

// InFlight returns how many claimed runs this node has in hand (waiting or running).
func (p *Processor) InFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.running)
}

// BeginDrain refuses new messages and keeps runs that have not started from starting, at
// once: each is handed back (recorded interrupted, its message redelivered). Drain then waits
// for the rest. The node calls it first thing on SIGTERM. Idempotent.
func (p *Processor) BeginDrain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.draining {
		return
	}
	p.draining = true
	close(p.drained)
	for _, r := range p.running {
		if r.state == waiting {
			p.stopLocked(r, errDraining)
		}
	}
}

// Draining reports whether BeginDrain was called (readiness answers 503 from then on).
func (p *Processor) Draining() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.draining
}

// Drain stops taking new messages, waits up to the drain timeout for runs in flight, then
// interrupts the rest and waits for them to record that. It returns how many were interrupted.
func (p *Processor) Drain(ctx context.Context) int {
	p.BeginDrain()
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	timer := time.NewTimer(p.cfg.DrainTimeout)
	defer timer.Stop()
	select {
	case <-done:
		return 0
	case <-timer.C:
	case <-ctx.Done():
	}
	p.mu.Lock()
	n := len(p.running)
	for _, r := range p.running {
		p.stopLocked(r, errDraining)
	}
	p.mu.Unlock()
	p.log.Warn("drain deadline passed, interrupting runs", "runs", n)
	// Handlers that honour ctx return promptly and record "interrupted"; one that ignores it
	// is left behind, and its run is taken over by another node once its heartbeat goes stale.
	t := time.NewTimer(15 * time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		p.log.Error("runs ignored cancellation; leaving them to be taken over", "runs", p.InFlight())
	}
	return n
}
