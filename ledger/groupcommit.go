package ledger

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger/coalesce"
)

// GroupCommit is the ledger with claims and outcomes group-committed: calls made at the same
// time from many consumer goroutines share one statement (ClaimRuns, FinishRuns), so a burst
// of short runs costs a few statements instead of two per run. A call made while the ledger
// is idle still goes alone and at once. Every other method is the Ledger's.
type GroupCommit struct {
	*Ledger
	claims   *coalesce.Batcher[claimCall, ClaimResult]
	finishes *coalesce.Batcher[FinishRequest, error]
}

type claimCall struct {
	req        ClaimRequest
	staleAfter time.Duration
}

// flushTimeout bounds one batch statement; a batch serves many callers, so none of their
// contexts can bound it.
const flushTimeout = 30 * time.Second

// BatchObserver is told about every group-committed statement (op is "claim" or "finish"),
// for metrics. It must be cheap and safe for concurrent use.
type BatchObserver interface {
	LedgerBatch(op string, size int, took time.Duration, err error)
}

// NewGroupCommit wraps l. maxBatch bounds the requests in one statement; flushers bounds the
// statements in flight at once, each for claims and for outcomes, plus one express statement
// each for calls with priority (so up to 2*flushers+2 pool connections). obs may be nil.
func NewGroupCommit(l *Ledger, maxBatch, flushers int, obs BatchObserver) *GroupCommit {
	opts := func(op string) coalesce.Options {
		o := coalesce.Options{MaxBatch: maxBatch, Flushers: flushers,
			NewContext: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), flushTimeout)
			}}
		if obs != nil {
			o.Observe = func(size int, took time.Duration, err error) { obs.LedgerBatch(op, size, took, err) }
		}
		return o
	}
	g := &GroupCommit{Ledger: l}
	g.claims = coalesce.New(g.flushClaims, opts("claim"))
	g.finishes = coalesce.New(g.flushFinishes, opts("finish"))
	return g
}

// ClaimRun is Ledger.ClaimRun, group-committed (ahead of the queue when prio is First).
func (g *GroupCommit) ClaimRun(ctx context.Context, env job.Envelope, node, msgID string, staleAfter time.Duration, prio Priority) (Claim, error) {
	do := g.claims.Do
	if prio == First {
		do = g.claims.DoFirst
	}
	r, err := do(ctx, claimCall{req: ClaimRequest{Env: env, Node: node, MsgID: msgID}, staleAfter: staleAfter})
	if err != nil {
		return Claim{}, err
	}
	return r.Claim, r.Err
}

// ClaimRuns is Ledger.ClaimRuns, group-committed: a consumer that was handed a batch of
// messages claims them together, and with the claims other batches queued meanwhile, in as
// few statements as the batch bound allows. Unlike Ledger.ClaimRuns it has no error of the
// whole call: each request's error (its statement's, should that fail) is in its result.
func (g *GroupCommit) ClaimRuns(ctx context.Context, staleAfter time.Duration, prio Priority, reqs []ClaimRequest) ([]ClaimResult, error) {
	calls := make([]claimCall, len(reqs))
	for i, r := range reqs {
		calls[i] = claimCall{req: r, staleAfter: staleAfter}
	}
	doEach := g.claims.DoEach
	if prio == First {
		doEach = g.claims.DoEachFirst
	}
	res, errs := doEach(ctx, calls)
	for i, err := range errs {
		if err != nil {
			res[i] = ClaimResult{Err: err}
		}
	}
	return res, nil
}

// Finish is Ledger.Finish, group-committed (ahead of the queue when prio is First).
func (g *GroupCommit) Finish(ctx context.Context, c Claim, o Outcome, prio Priority) error {
	do := g.finishes.Do
	if prio == First {
		do = g.finishes.DoFirst
	}
	err, batchErr := do(ctx, FinishRequest{Claim: c, Outcome: o})
	if batchErr != nil {
		return batchErr
	}
	return err
}

// flushClaims claims a batch. Callers pass one staleAfter in practice (it is node config);
// should they differ, each value gets its own statement.
func (g *GroupCommit) flushClaims(ctx context.Context, calls []claimCall) ([]ClaimResult, error) {
	out := make([]ClaimResult, len(calls))
	groups := map[time.Duration][]int{}
	for i, c := range calls {
		groups[c.staleAfter] = append(groups[c.staleAfter], i)
	}
	for staleAfter, idx := range groups {
		reqs := make([]ClaimRequest, len(idx))
		for j, i := range idx {
			reqs[j] = calls[i].req
		}
		res, err := g.Ledger.ClaimRuns(ctx, staleAfter, reqs)
		if len(reqs) > 1 && rejectedByServer(err) {
			// One bad request (or a deadlock) must not fail its neighbours: try each alone.
			res, err = make([]ClaimResult, len(reqs)), nil
			for j, r := range reqs {
				one, oneErr := g.Ledger.ClaimRuns(ctx, staleAfter, []ClaimRequest{r})
				if oneErr != nil {
					res[j] = ClaimResult{Err: oneErr}
					continue
				}
				res[j] = one[0]
			}
		}
		for j, i := range idx {
			if err != nil {
				out[i] = ClaimResult{Err: err}
				continue
			}
			out[i] = res[j]
		}
	}
	return out, nil
}

// flushFinishes records a batch of outcomes, each alone should the batch statement fail.
func (g *GroupCommit) flushFinishes(ctx context.Context, reqs []FinishRequest) ([]error, error) {
	errs, err := g.FinishRuns(ctx, reqs)
	if len(reqs) == 1 || !rejectedByServer(err) {
		return errs, err
	}
	errs = make([]error, len(reqs))
	for i, r := range reqs {
		one, oneErr := g.FinishRuns(ctx, []FinishRequest{r})
		if oneErr != nil {
			errs[i] = oneErr
			continue
		}
		errs[i] = one[0]
	}
	return errs, nil
}

// rejectedByServer tells a statement Postgres refused (a constraint, a deadlock: worth
// retrying request by request) from a connection that failed (where retrying each request
// would only multiply the wait).
func rejectedByServer(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}
