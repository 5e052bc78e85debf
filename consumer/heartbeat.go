package consumer

import (
	"context"
	"time"

	"github.com/chatplat/job-service/ledger"
)

// Heartbeat marks the runs in hand alive once (waiting and running), and stops those another
// node took over. It gives the ledger a third of stale_after to answer: a connection that
// hangs must not keep the node from noticing that it is cut off.
func (p *Processor) Heartbeat(ctx context.Context) error {
	p.mu.Lock()
	claims := make([]ledger.Claim, 0, len(p.running))
	sentRuns := make([]*run, 0, len(p.running))
	// A run claimed less than a quarter interval ago still has the heartbeat its claim wrote:
	// it cannot have gone stale (stale_after is at least two intervals), and the next beat
	// refreshes it well before stopUnheard's limit (2/3 of stale_after, at least 4/3 of an
	// interval). Short runs mostly end before their first beat, so the heartbeat statement
	// no longer grows with the throughput.
	young := p.now().Add(-p.cfg.HeartbeatInterval / 4)
	for _, r := range p.running {
		if r.aliveAt.After(young) {
			continue
		}
		claims, sentRuns = append(claims, r.claim), append(sentRuns, r)
	}
	p.mu.Unlock()
	sent := p.now()
	hctx, cancel := context.WithTimeout(ctx, p.cfg.StaleAfter/3)
	defer cancel()
	lost, err := p.ledger.Heartbeat(hctx, p.cfg.Node, claims)
	if err != nil {
		return err
	}
	p.mu.Lock()
	gone := make(map[int64]bool, len(lost))
	for _, id := range lost {
		gone[id] = true
	}
	for _, r := range sentRuns {
		// The attempt heartbeated is the one lost; a newer attempt claimed here since owns the
		// entry now and is not.
		if p.running[r.claim.RunID] != r {
			continue
		}
		switch {
		case gone[r.claim.RunID]:
			p.stopLocked(r, ledger.ErrLostClaim)
		case sent.After(r.aliveAt):
			r.aliveAt = sent
		}
	}
	p.mu.Unlock()
	return p.syncRuns(ctx)
}

// stopUnheard stops the runs whose heartbeat has not reached the ledger for two thirds of
// stale_after: past stale_after another node may take them over, and the handler must have
// stopped by then, or the job runs twice at once. The last third is the handler's time to
// notice its context.
func (p *Processor) stopUnheard() {
	limit := p.cfg.StaleAfter * 2 / 3
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, r := range p.running {
		if r.stopped || now.Sub(r.aliveAt) < limit {
			continue
		}
		r.stopped = true
		p.stopLocked(r, ErrLedgerUnreachable)
		p.log.Error("ledger unreachable; stopping run before another node takes it over", "run_id", id,
			"attempt", r.claim.Attempt, "unheard_for", now.Sub(r.aliveAt).Round(time.Millisecond))
	}
}

// HeartbeatLoop calls Heartbeat every interval until ctx ends, and stops runs the ledger has
// not heard of for too long (see stopUnheard) even while a heartbeat call hangs.
func (p *Processor) HeartbeatLoop(ctx context.Context) {
	watch := time.NewTicker(min(p.cfg.HeartbeatInterval, p.cfg.StaleAfter/10))
	defer watch.Stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-watch.C:
				p.stopUnheard()
			}
		}
	}()
	defer func() { <-done }()
	t := time.NewTicker(p.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := p.Heartbeat(ctx); err != nil && ctx.Err() == nil {
				p.log.WarnContext(ctx, "heartbeat failed", "err", err)
			}
		}
	}
}
