package consumer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// BatchClaimer is a ledger that claims the runs of many deliveries in one call
// (ledger.GroupCommit). A Ledger without it is asked run by run.
type BatchClaimer interface {
	ClaimRuns(ctx context.Context, staleAfter time.Duration, prio ledger.Priority, reqs []ledger.ClaimRequest) ([]ledger.ClaimResult, error)
}

// admitted is a delivery decoded and validated, once.
type admitted struct {
	d        Delivery
	env      job.Envelope
	spec     job.Spec
	prepared job.Prepared
	err      error // why it cannot run: it is rejected
}

// admit decodes d and prepares its handler.
func (p *Processor) admit(d Delivery, now time.Time) admitted {
	env, err := job.Decode(d.Body, now, p.registry.Known)
	a := admitted{d: d, env: env, spec: p.spec(env.Job), err: err}
	if err == nil {
		a.prepared, a.err = p.registry.Prepare(env)
	}
	return a
}

// isAlone reports whether a must take the path of its own (alone.go) rather than the
// delivery's shared claim: it is rejected, too early to be held here, checked for overlap at
// its time, or an operator's resent dead letter. A message a little early (within
// early_tolerance, ticker.deliver_ahead) is claimed with the others and held until its time.
func (p *Processor) isAlone(a *admitted, now time.Time) bool {
	return a.err != nil || fromDLQ(a.d) || a.spec.Overlap == job.OverlapSkipIfRunning ||
		a.env.ScheduledAt.Sub(now) > p.cfg.EarlyTolerance
}

// ProcessLane handles the messages of one delivery of lane and returns one decision per
// message, in order. Each decision is the one Process would have made for the message alone:
// the delivery only shares the claim (one ledger call for the messages that need nothing else
// first) and the wait for outcomes, which the group commit coalesces. Every claimed run waits
// for its own time and handler slot (max_running) and records its own outcome.
//
// At most InHand(lane) messages of the lane are claimed and in hand on the node at once,
// over all deliveries: each holds a token from claim to decision. A delivery takes the tokens
// that are free (at least one, waiting for it) and claims that many, then the next ones as
// tokens come back; it never holds tokens without having claimed runs that will return them,
// so deliveries cannot starve each other. Every claimed run is heartbeated, so this bound is
// also the heartbeat statement's. The schedule lane's claims, outcomes and handler slots go
// ahead of the job lane's.
func (p *Processor) ProcessLane(ctx context.Context, lane Lane, ds []Delivery) []Decision {
	out := make([]Decision, len(ds))
	if !p.enter() {
		for i := range out {
			out[i] = refused
		}
		return out
	}
	defer p.wg.Done()
	now := p.now()
	batch := make([]admitted, 0, len(ds))
	var idx, alone []int
	var lone []admitted
	for i, d := range ds {
		a := p.admit(d, now)
		if p.isAlone(&a, now) {
			lone, alone = append(lone, a), append(alone, i)
			continue
		}
		batch, idx = append(batch, a), append(idx, i)
	}
	var wg sync.WaitGroup
	p.claimBatch(ctx, lane, batch, idx, out, &wg)
	inHand := p.inHand[lane]
	for j, i := range alone {
		if p.takeInHand(ctx, inHand, 1) == 0 {
			out[i] = refused
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inHand }()
			out[i] = p.alone(ctx, lane, &lone[j])
		}()
	}
	wg.Wait()
	return out
}

// claimBatch claims the runs of batch (whose decisions go to out[idx[j]]) in as few ledger
// calls as the lane's free tokens allow, and hands each claimed run to execute; wg counts the
// runs whose decisions are still to come.
func (p *Processor) claimBatch(ctx context.Context, lane Lane, batch []admitted, idx []int, out []Decision, wg *sync.WaitGroup) {
	inHand := p.inHand[lane]
	for len(batch) > 0 {
		n := p.takeInHand(ctx, inHand, len(batch))
		if n == 0 {
			for _, i := range idx {
				out[i] = refused
			}
			return
		}
		chunk, at := batch[:n], idx[:n]
		batch, idx = batch[n:], idx[n:]
		reqs := make([]ledger.ClaimRequest, len(chunk))
		for j := range chunk {
			reqs[j] = ledger.ClaimRequest{Env: chunk[j].env, Node: p.cfg.Node, MsgID: chunk[j].d.MsgID}
		}
		claimSent := p.now()
		res := p.claimAll(ctx, lane.priority(), reqs)
		for j := range chunk {
			d, r := p.claimed(ctx, lane, &chunk[j], res[j].Claim, res[j].Err, claimSent)
			if r == nil {
				out[at[j]] = d
				<-inHand
				continue
			}
			i := at[j]
			wg.Add(1)
			r.done = func(d Decision) {
				out[i] = d
				<-inHand
				wg.Done()
			}
			p.submit(r)
		}
	}
}

// takeInHand waits for one of inHand's tokens, then takes up to want-1 more that are free at
// once, and returns how many it took: 0 when the drain began or ctx ended first.
func (p *Processor) takeInHand(ctx context.Context, inHand chan struct{}, want int) int {
	select {
	case inHand <- struct{}{}:
	case <-p.drained:
		return 0
	case <-ctx.Done():
		return 0
	}
	if p.Draining() { // the token and the drain were ready at once
		<-inHand
		return 0
	}
	n := 1
	for n < want {
		select {
		case inHand <- struct{}{}:
			n++
		default:
			return n
		}
	}
	return n
}

// claimAll claims reqs in one ledger call when the ledger can, else one by one. An error of
// the whole call is each request's error.
func (p *Processor) claimAll(ctx context.Context, prio ledger.Priority, reqs []ledger.ClaimRequest) []ledger.ClaimResult {
	bc, ok := p.ledger.(BatchClaimer)
	if !ok {
		res := make([]ledger.ClaimResult, len(reqs))
		for i, r := range reqs {
			res[i].Claim, res[i].Err = p.ledger.ClaimRun(ctx, r.Env, r.Node, r.MsgID, p.cfg.StaleAfter, prio)
		}
		return res
	}
	res, err := bc.ClaimRuns(ctx, p.cfg.StaleAfter, prio, reqs)
	if err == nil && len(res) != len(reqs) {
		err = fmt.Errorf("claim %d runs: the ledger answered %d", len(reqs), len(res))
	}
	if err != nil {
		res = make([]ledger.ClaimResult, len(reqs))
		for i := range res {
			res[i].Err = err
		}
	}
	return res
}
