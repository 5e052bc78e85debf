package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// BatchClaimer is a ledger that claims the runs of many deliveries in one call
// (ledger.GroupCommit, ledger.Ledger). A Ledger without it is asked run by run.
type BatchClaimer interface {
	ClaimRuns(ctx context.Context, staleAfter time.Duration, reqs []ledger.ClaimRequest) ([]ledger.ClaimResult, error)
}

// claimable is a delivery of a batch that goes straight to the batch's claim.
type claimable struct {
	i        int
	env      job.Envelope
	spec     job.Spec
	prepared job.Prepared
}

// ProcessBatch handles the messages of one delivery and returns one decision per message, in
// order. Each decision is the one Process would have made for the message alone: the batch
// only shares the claim (one ledger call for the messages that need nothing else first) and
// the wait for outcomes, which the group commit coalesces. Every claimed run still gets its
// own goroutine, waits for its own handler slot (max_running) and records its own outcome;
// messages that need more than a claim (malformed, early, skip_if_running, resent dead
// letters) take Process's path, each in its own goroutine.
//
// At most Goroutines messages are claimed and in hand on the node at once, over all
// deliveries: each holds a token from claim to decision. A delivery takes the tokens that
// are free (at least one, waiting for it) and claims that many, then the next ones as tokens
// come back; it never holds tokens without having claimed runs that will return them, so
// deliveries cannot starve each other. Every claimed run is heartbeated, so this bound is
// also the heartbeat statement's.
func (p *Processor) ProcessBatch(ctx context.Context, ds []Delivery) []Decision {
	return p.ProcessLane(ctx, LaneJobs, ds)
}

// ProcessLane is ProcessBatch for the deliveries of lane: the messages in hand are bounded
// by the lane's own tokens, and the schedule lane's claims, outcomes and handler slots go
// ahead of the job lane's (ledger.WithPriority).
func (p *Processor) ProcessLane(ctx context.Context, lane Lane, ds []Delivery) []Decision {
	if lane == LaneSchedule {
		ctx = ledger.WithPriority(ctx)
	}
	inHand := p.inHand[lane]
	out := make([]Decision, len(ds))
	p.mu.Lock()
	if p.draining {
		p.mu.Unlock()
		for i := range out {
			out[i] = Decision{Action: RetryLater, After: time.Second, Reason: "node draining"}
		}
		return out
	}
	p.wg.Add(1)
	p.mu.Unlock()
	defer p.wg.Done()

	var wg sync.WaitGroup
	now := p.now()
	batch := make([]claimable, 0, len(ds))
	var alone []int
	for i, d := range ds {
		env, err := job.Decode(d.Body, now, p.registry.Known)
		var prepared job.Prepared
		if err == nil {
			prepared, err = p.registry.Prepare(env)
		}
		spec := p.spec(env.Job)
		if err != nil || env.ScheduledAt.After(now) || fromDLQ(d) || spec.Overlap == job.OverlapSkipIfRunning {
			alone = append(alone, i)
			continue
		}
		batch = append(batch, claimable{i: i, env: env, spec: spec, prepared: prepared})
	}
	refuse := func(i int) {
		out[i] = Decision{Action: RetryLater, After: time.Second, Reason: "node draining"}
	}
	for len(batch) > 0 {
		n := p.takeInHand(ctx, inHand, len(batch))
		if n == 0 {
			for _, c := range batch {
				refuse(c.i)
			}
			break
		}
		chunk := batch[:n]
		batch = batch[n:]
		reqs := make([]ledger.ClaimRequest, len(chunk))
		for j, c := range chunk {
			reqs[j] = ledger.ClaimRequest{Env: c.env, Node: p.cfg.Node, MsgID: ds[c.i].MsgID}
		}
		claimSent := p.now()
		res := p.claimAll(ctx, reqs)
		for j, c := range chunk {
			d := ds[c.i]
			log := p.log.With(slog.String("job", c.env.Job), slog.String("run_key", c.env.RunKey),
				slog.Int("shard", c.env.Shard.Index), slog.String("msg_id", d.MsgID))
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-inHand }()
				out[c.i] = p.claimed(ctx, log, d, c.env, c.spec, c.prepared, res[j].Claim, res[j].Err, claimSent)
			}()
		}
	}
	for _, i := range alone {
		if p.takeInHand(ctx, inHand, 1) == 0 {
			refuse(i)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inHand }()
			out[i] = p.Process(ctx, ds[i])
		}()
	}
	wg.Wait()
	return out
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
	if !p.mayStart() { // the token and the drain were ready at once
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
func (p *Processor) claimAll(ctx context.Context, reqs []ledger.ClaimRequest) []ledger.ClaimResult {
	bc, ok := p.ledger.(BatchClaimer)
	if !ok {
		res := make([]ledger.ClaimResult, len(reqs))
		for i, r := range reqs {
			res[i].Claim, res[i].Err = p.ledger.ClaimRun(ctx, r.Env, r.Node, r.MsgID, p.cfg.StaleAfter)
		}
		return res
	}
	res, err := bc.ClaimRuns(ctx, p.cfg.StaleAfter, reqs)
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
