package ledger

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatplat/job-service/job"
)

// The statements of a run's life on a node, named so that a test can check their plans
// (TestHotStatementsFindRunsByKey): at thousands of runs a second, a plan that reads more of
// job_runs than the rows it names is most of what the ledger costs.
const (
	// insertRunsSQL claims runs that do not exist yet.
	insertRunsSQL = `
		INSERT INTO job_runs (job, run_key, shard_index, shard_total, trigger, scheduled_at, params, requested_by,
			status, attempt, node, msg_id, started_at, heartbeat_at)
		SELECT job, run_key, shard_index, shard_total, trigger, scheduled_at, params::jsonb, requested_by,
			'running', 1, node, msg_id, greatest(now(), scheduled_at), now()
		FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[], $6::timestamptz[],
			$7::text[], $8::text[], $9::text[], $10::text[])
			AS r(job, run_key, shard_index, shard_total, trigger, scheduled_at, params, requested_by, node, msg_id)
		-- not a run retention may have pruned (see TooOld); FOR SHARE waits for a pruning that
		-- is raising the horizon and reads the raised one (see raiseHorizonSQL)
		WHERE r.scheduled_at >= coalesce((SELECT cutoff FROM job_prune_horizon WHERE target = 'runs' FOR SHARE), '-infinity')
		ON CONFLICT (job, run_key, shard_index) DO NOTHING
		RETURNING id, attempt, job, run_key, shard_index, status`
	// takeOverSQL claims runs that exist and may be taken. A scheduled occurrence of a job
	// paused at or before its time is recorded skipped instead: the ticker reads the paused
	// jobs once per tick, so a pause that lands between that read and its record of the next
	// occurrence finds no row to skip, and this is where that occurrence is stopped. The pause
	// is found by its job, the primary key of job_pauses, and only for trigger 'schedule'.
	takeOverSQL = `
		WITH req AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[])
				AS r(job, run_key, shard_index, node, msg_id)),
		prev AS (
			SELECT j.id, j.attempt, j.node, j.msg_id, j.started_at, j.finished_at, j.updated_at, j.status, j.error,
				r.node AS new_node, r.msg_id AS new_msg_id, p.paused_by
			FROM job_runs j JOIN req r ON j.job = r.job AND j.run_key = r.run_key AND j.shard_index = r.shard_index
				LEFT JOIN job_pauses p ON p.job = j.job AND j.trigger = 'schedule' AND j.status = 'scheduled'
					AND p.paused_at <= j.scheduled_at
			WHERE (j.status IN ('scheduled', 'retrying', 'interrupted', 'abandoned')
			   OR (j.status = 'running' AND j.heartbeat_at < now() - $6::interval))
			  AND j.cancel_requested_at IS NULL -- cancelled while its node vanished: never rerun
			ORDER BY j.job, j.run_key, j.shard_index
			FOR UPDATE OF j),
		taken AS (
			UPDATE job_runs j SET status = 'running', attempt = prev.attempt + 1, node = prev.new_node,
				msg_id = CASE WHEN prev.new_msg_id <> '' THEN prev.new_msg_id ELSE prev.msg_id END,
				started_at = greatest(now(), j.scheduled_at), heartbeat_at = now(), finished_at = NULL, error = '', updated_at = now()
			FROM prev WHERE j.id = prev.id AND prev.paused_by IS NULL
			RETURNING j.id, j.attempt, j.job, j.run_key, j.shard_index, j.status),
		skipped AS (
			UPDATE job_runs j SET status = 'skipped', finished_at = now(), updated_at = now(),
				result = jsonb_build_object('skipped', 'paused', 'paused_by', prev.paused_by)
			FROM prev WHERE j.id = prev.id AND prev.paused_by IS NOT NULL
			RETURNING j.id, j.attempt, j.job, j.run_key, j.shard_index, j.status),
		archived AS (
			INSERT INTO job_past_attempts AS p (run_id, attempt, node, msg_id, started_at, finished_at, outcome, error)
			SELECT id, attempt, node, msg_id, started_at,
				CASE WHEN status = 'running' THEN now() ELSE coalesce(finished_at, updated_at) END,
				CASE WHEN status = 'running' THEN 'abandoned' ELSE status END, error
			FROM prev WHERE attempt > 0 AND started_at IS NOT NULL
			-- a row kept from before migration 00050 may already hold this attempt
			ON CONFLICT (run_id, attempt) DO UPDATE SET outcome = EXCLUDED.outcome, finished_at = EXCLUDED.finished_at
			WHERE p.outcome = 'running')
		SELECT id, attempt, job, run_key, shard_index, status FROM taken
		UNION ALL SELECT id, attempt, job, run_key, shard_index, status FROM skipped`
	// finishSQL records outcomes, fenced by attempt.
	// An attempt that failed or was interrupted after an operator asked to cancel its run
	// (before its heartbeat brought the request) ends the run cancelled: recorded retrying or
	// interrupted, nothing would take it again. The request is read from the row as locked.
	finishSQL = `
		UPDATE job_runs j SET updated_at = now(), result = req.result::jsonb,
			status = CASE WHEN j.cancel_requested_by IS NOT NULL AND req.status IN ('retrying', 'interrupted', 'failed')
				THEN 'cancelled' ELSE req.status END,
			error = CASE WHEN j.cancel_requested_by IS NOT NULL AND req.status IN ('retrying', 'interrupted', 'failed')
				THEN 'cancelled by ' || j.cancel_requested_by ELSE req.error END,
			finished_at = CASE WHEN req.status IN ('succeeded', 'failed', 'skipped', 'cancelled')
				OR j.cancel_requested_by IS NOT NULL AND req.status IN ('retrying', 'interrupted') THEN now() ELSE NULL END
		FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[]) AS req(id, attempt, status, result, error)
		WHERE j.id = req.id AND j.attempt = req.attempt AND (j.status = 'running') IS TRUE
		RETURNING j.id, j.attempt, j.status = 'cancelled' AND req.status <> 'cancelled'`
	// heartbeatSQL refreshes the heartbeats of a node's runs.
	heartbeatSQL = `
		UPDATE job_runs r SET heartbeat_at = now()
		FROM unnest($1::bigint[], $2::int[]) AS held(id, attempt)
		WHERE r.id = held.id AND r.attempt = held.attempt AND (r.status = 'running') IS TRUE AND r.node = $3
		RETURNING r.id`
)

// ClaimOutcome says what the consumer should do with a message after trying to claim it.
type ClaimOutcome int

// Claim outcomes.
const (
	// Claimed: this node holds the run and must run the handler.
	Claimed ClaimOutcome = iota
	// AlreadyDone: the run reached a terminal state earlier; acknowledge and skip.
	AlreadyDone
	// HeldElsewhere: another node is running it and heartbeating; try again later, in case
	// that node dies.
	HeldElsewhere
	// TooOld: the run has no row and was scheduled before the dedup horizon (the newest cutoff
	// retention pruned runs with, PruneHorizon): it may be a run that already ran and was
	// pruned, so it is refused instead of run again.
	TooOld
)

// Claim is the run a node holds after a successful claim.
type Claim struct {
	Outcome ClaimOutcome
	RunID   int64
	Attempt int
	Status  Status // the status found, for AlreadyDone and HeldElsewhere
}

// ClaimRequest is one delivery that wants its run.
type ClaimRequest struct {
	Env   job.Envelope
	Node  string
	MsgID string
}

// ClaimResult is the answer to one ClaimRequest.
type ClaimResult struct {
	Claim Claim
	Err   error
}

// ClaimRun takes the run named by env for node. It inserts the row, or takes it over when it
// is scheduled, retrying, interrupted, abandoned, or running with a heartbeat older than
// staleAfter (its node vanished). Succeeded, failed, rejected and skipped runs are never run
// again, which makes redelivery and double publishing harmless. The attempt's start is
// recorded no earlier than env.ScheduledAt: the consumer claims a fire while it holds the
// early-delivered message, and starts its handler at scheduled_at.
func (l *Ledger) ClaimRun(ctx context.Context, env job.Envelope, node, msgID string, staleAfter time.Duration) (Claim, error) {
	res, err := l.ClaimRuns(ctx, staleAfter, []ClaimRequest{{Env: env, Node: node, MsgID: msgID}})
	if err != nil {
		return Claim{}, err
	}
	return res[0].Claim, res[0].Err
}

// ClaimRuns is ClaimRun for many deliveries in one statement: one round trip and one commit
// for the batch, which is what lets a node ledger thousands of short runs a second. Each
// answer is what ClaimRun would have given had the requests come one after another: a
// second delivery of a run claimed earlier in the batch finds it held. An error of the call
// means no request was claimed; a request's own error is in its ClaimResult.
func (l *Ledger) ClaimRuns(ctx context.Context, staleAfter time.Duration, reqs []ClaimRequest) ([]ClaimResult, error) {
	first, again := splitRepeats(reqs, func(r ClaimRequest) runKey { return keyOf(r.Env) }, runKey.compare)
	byKey, err := l.claimDistinct(ctx, staleAfter, reqs, first)
	if err != nil {
		return nil, err
	}
	out := make([]ClaimResult, len(reqs))
	for _, i := range first {
		out[i] = byKey[keyOf(reqs[i].Env)]
	}
	if len(again) == 0 {
		return out, nil
	}
	// Repeats go in a statement of their own, after the first ones committed.
	rest := make([]ClaimRequest, len(again))
	for j, i := range again {
		rest[j] = reqs[i]
	}
	res, err := l.ClaimRuns(ctx, staleAfter, rest)
	for j, i := range again {
		if err != nil { // the first ones hold their claims; only the repeats failed
			out[i] = ClaimResult{Err: err}
			continue
		}
		out[i] = res[j]
	}
	return out, nil
}

// claimDistinct claims reqs[i] for i in idx, whose keys are distinct and sorted.
//
// A run that does not exist yet (a forced run, an event) is claimed by a plain insert; a run
// that exists (scheduled by the ticker, republished by its repair pass, or left by an
// earlier attempt) is taken over by an update. Each request goes first to the statement its
// trigger makes likely and, when that finds nothing, to the other; whatever neither claimed
// is then read to say why (finished, or held by a live node).
func (l *Ledger) claimDistinct(ctx context.Context, staleAfter time.Duration, reqs []ClaimRequest, idx []int) (map[runKey]ClaimResult, error) {
	out := make(map[runKey]ClaimResult, len(idx))
	unclaimed := func(from []int) []int {
		var rest []int
		for _, i := range from {
			if _, ok := out[keyOf(reqs[i].Env)]; !ok {
				rest = append(rest, i)
			}
		}
		return rest
	}
	var fresh, existing []int
	for _, i := range idx {
		if t := reqs[i].Env.Trigger; t == job.TriggerSchedule || t == job.TriggerRecovery {
			existing = append(existing, i)
		} else {
			fresh = append(fresh, i)
		}
	}
	if err := l.insertRuns(ctx, reqs, fresh, out); err != nil {
		return nil, fmt.Errorf("claim %s: %w", describeClaims(reqs, idx), err)
	}
	if err := l.takeOverRuns(ctx, staleAfter, reqs, sortedByKey(reqs, append(existing, unclaimed(fresh)...)), out); err != nil {
		return nil, fmt.Errorf("claim %s: %w", describeClaims(reqs, idx), err)
	}
	if err := l.insertRuns(ctx, reqs, unclaimed(existing), out); err != nil {
		return nil, fmt.Errorf("claim %s: %w", describeClaims(reqs, idx), err)
	}
	if err := l.explainUnclaimed(ctx, reqs, unclaimed(idx), out); err != nil {
		return nil, fmt.Errorf("claim %s: %w", describeClaims(reqs, idx), err)
	}
	return out, nil
}

// sortedByKey sorts idx by the requests' keys, the one order in which every batch locks rows.
func sortedByKey(reqs []ClaimRequest, idx []int) []int {
	slices.SortFunc(idx, func(a, b int) int { return keyOf(reqs[a].Env).compare(keyOf(reqs[b].Env)) })
	return idx
}

// collectClaims adds the runs that rows name (id, attempt, job, run_key, shard, status) to
// out: claimed when running, done otherwise (skipped because its job is paused).
func collectClaims(rows pgx.Rows, out map[runKey]ClaimResult) error {
	var k runKey
	var c Claim
	_, err := pgx.ForEachRow(rows, []any{&c.RunID, &c.Attempt, &k.job, &k.runKey, &k.shard, &c.Status}, func() error {
		if c.Status != StatusRunning {
			out[k] = ClaimResult{Claim: Claim{Outcome: AlreadyDone, RunID: c.RunID, Status: c.Status}}
			return nil
		}
		out[k] = ClaimResult{Claim: Claim{Outcome: Claimed, RunID: c.RunID, Attempt: c.Attempt, Status: StatusRunning}}
		return nil
	})
	return err
}

// insertRuns claims the runs of reqs[idx] that do not exist yet by inserting them, running at
// attempt 1. It is a plain insert from the arrays whose conflict check is the unique index
// itself, so no plan can turn it into a scan of job_runs (a cached generic plan of a join,
// made while the table was small, once did: every claim then read the whole table). The
// new run is one row and nothing else, since the row carries its attempt. Keys come sorted,
// so concurrent batches wait for each other's keys in one order.
func (l *Ledger) insertRuns(ctx context.Context, reqs []ClaimRequest, idx []int, out map[runKey]ClaimResult) error {
	if len(idx) == 0 {
		return nil
	}
	n := len(idx)
	jobs, keys, shards := keyColumns(reqs, idx)
	nodes, msgIDs := attemptColumns(reqs, idx)
	triggers, params, requestedBy := make([]string, n), make([]string, n), make([]string, n)
	totals, scheduled := make([]int32, n), make([]time.Time, n)
	for j, i := range idx {
		r := reqs[i]
		totals[j], triggers[j], scheduled[j] = int32(r.Env.Shard.Total), string(r.Env.Trigger), r.Env.ScheduledAt
		params[j], requestedBy[j] = string(paramsOrEmpty(r.Env.Params)), r.Env.RequestedBy
	}
	rows, err := l.db.Query(ctx, insertRunsSQL,
		jobs, keys, shards, totals, triggers, scheduled, params, requestedBy, nodes, msgIDs)
	if err != nil {
		return err
	}
	return collectClaims(rows, out)
}

// takeOverRuns claims the runs of reqs[idx] that exist and may be taken: scheduled, retrying,
// interrupted, abandoned, or running with a heartbeat older than staleAfter (its node
// vanished). One statement locks them in key order (so concurrent batches never deadlock)
// and updates them; the attempt each replaces, read from the locked row, moves to
// job_past_attempts (none for a scheduled row, attempt 0). It joins job_runs, so it is
// planned at each call (QueryExecModeExec) for the table as it is now.
func (l *Ledger) takeOverRuns(ctx context.Context, staleAfter time.Duration, reqs []ClaimRequest, idx []int, out map[runKey]ClaimResult) error {
	if len(idx) == 0 {
		return nil
	}
	jobs, keys, shards := keyColumns(reqs, idx)
	nodes, msgIDs := attemptColumns(reqs, idx)
	rows, err := l.db.Query(ctx, takeOverSQL,
		pgx.QueryExecModeExec, jobs, keys, shards, nodes, msgIDs, staleAfter.String())
	if err != nil {
		return err
	}
	return collectClaims(rows, out)
}

// explainUnclaimed records why each run of reqs[idx] was not claimed: finished (AlreadyDone)
// or running on a live node (HeldElsewhere); a run that is not there at all was deleted
// between the statements (retention) and gets an error.
func (l *Ledger) explainUnclaimed(ctx context.Context, reqs []ClaimRequest, idx []int, out map[runKey]ClaimResult) error {
	if len(idx) == 0 {
		return nil
	}
	jobs, keys, shards := keyColumns(reqs, idx)
	rows, err := l.db.Query(ctx, `
		SELECT j.id, j.status, j.job, j.run_key, j.shard_index, j.cancel_requested_at IS NOT NULL
		FROM job_runs j JOIN unnest($1::text[], $2::text[], $3::int[]) AS k(job, run_key, shard_index)
			ON j.job = k.job AND j.run_key = k.run_key AND j.shard_index = k.shard_index`,
		pgx.QueryExecModeExec, jobs, keys, shards)
	if err != nil {
		return fmt.Errorf("read existing runs: %w", err)
	}
	var k runKey
	var id int64
	var status Status
	var cancelAsked bool
	var toCancel []int64
	_, err = pgx.ForEachRow(rows, []any{&id, &status, &k.job, &k.runKey, &k.shard, &cancelAsked}, func() error {
		held := Claim{RunID: id, Status: status, Outcome: AlreadyDone}
		if status == StatusRunning {
			held.Outcome = HeldElsewhere
		} else if cancelAsked && !status.Terminal() {
			toCancel = append(toCancel, id)
		}
		out[k] = ClaimResult{Claim: held}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read existing runs: %w", err)
	}
	// Left between attempts with a cancel request (by a node of an earlier release): the
	// takeover refused it, and acknowledged as it is nothing would ever end it.
	if err := l.endCancelled(ctx, toCancel, out); err != nil {
		return err
	}
	var horizon time.Time
	read := false
	for _, i := range idx {
		k := keyOf(reqs[i].Env)
		if _, ok := out[k]; ok {
			continue
		}
		if !read {
			if horizon, err = l.PruneHorizon(ctx); err != nil {
				return err
			}
			read = true
		}
		if reqs[i].Env.ScheduledAt.Before(horizon) {
			out[k] = ClaimResult{Claim: Claim{Outcome: TooOld}}
			continue
		}
		out[k] = ClaimResult{Err: fmt.Errorf("claim %s/%s shard %d: run vanished while being claimed", k.job, k.runKey, k.shard)}
	}
	return nil
}

// keyColumns are the run keys of reqs[idx] as the statements' array parameters.
func keyColumns(reqs []ClaimRequest, idx []int) (jobs, keys []string, shards []int32) {
	jobs, keys, shards = make([]string, len(idx)), make([]string, len(idx)), make([]int32, len(idx))
	for j, i := range idx {
		jobs[j], keys[j], shards[j] = reqs[i].Env.Job, reqs[i].Env.RunKey, int32(reqs[i].Env.Shard.Index)
	}
	return jobs, keys, shards
}

// attemptColumns are the claiming node and message of reqs[idx], as array parameters.
func attemptColumns(reqs []ClaimRequest, idx []int) (nodes, msgIDs []string) {
	nodes, msgIDs = make([]string, len(idx)), make([]string, len(idx))
	for j, i := range idx {
		nodes[j], msgIDs[j] = reqs[i].Node, reqs[i].MsgID
	}
	return nodes, msgIDs
}

// describeClaims names the run of a one-request batch, or counts a bigger one, for errors.
func describeClaims(reqs []ClaimRequest, idx []int) string {
	if len(idx) == 1 {
		return reqs[idx[0]].Env.Job + "/" + reqs[idx[0]].Env.RunKey
	}
	return fmt.Sprintf("%d runs", len(idx))
}

type runKey struct {
	job, runKey string
	shard       int
}

func keyOf(env job.Envelope) runKey { return runKey{env.Job, env.RunKey, env.Shard.Index} }

func (a runKey) compare(b runKey) int {
	if c := strings.Compare(a.job, b.job); c != 0 {
		return c
	}
	if c := strings.Compare(a.runKey, b.runKey); c != 0 {
		return c
	}
	return a.shard - b.shard
}

// splitRepeats returns the indexes of the first request of each key, sorted by key, and the
// indexes of the repeats in their original order. Sorting makes concurrent batches lock
// their rows in one order, so two batches never deadlock on each other.
func splitRepeats[T any, K comparable](reqs []T, key func(T) K, compare func(a, b K) int) (first, again []int) {
	seen := make(map[K]bool, len(reqs))
	for i, r := range reqs {
		k := key(r)
		if seen[k] {
			again = append(again, i)
			continue
		}
		seen[k] = true
		first = append(first, i)
	}
	slices.SortFunc(first, func(a, b int) int { return compare(key(reqs[a]), key(reqs[b])) })
	return first, again
}

// Outcome is how an attempt ended.
type Outcome struct {
	Status Status // succeeded, failed, retrying, interrupted or skipped
	Result any    // marshalled into job_runs.result; nil keeps it NULL
	Err    error
	// Log, when set, holds the attempt's log lines not written yet: they go in the outcome's
	// own statement, so a run's last lines cost no round trip of their own.
	Log *LogBatch
}

// ErrLostClaim is returned by Finish when the run was taken over by another node (this node
// was presumed dead): its outcome must not overwrite the newer attempt's.
var ErrLostClaim = errors.New("run was taken over by another attempt")

// FinishRequest is the outcome of one claimed attempt.
type FinishRequest struct {
	Claim   Claim
	Outcome Outcome
}

// Finish records the outcome of the attempt this node claimed. The attempt number fences it:
// a node that was presumed dead and comes back cannot overwrite a newer attempt.
func (l *Ledger) Finish(ctx context.Context, c Claim, o Outcome) error {
	errs, err := l.FinishRuns(ctx, []FinishRequest{{Claim: c, Outcome: o}})
	if err != nil {
		return err
	}
	return errs[0]
}

// FinishRuns is Finish for many attempts in one statement. The error of each request is nil
// or wraps ErrLostClaim (or a result that cannot be encoded); an error of the whole call
// means none was recorded.
func (l *Ledger) FinishRuns(ctx context.Context, reqs []FinishRequest) ([]error, error) {
	out := make([]error, len(reqs))
	var valid []int
	results := make([]*string, len(reqs))
	for i, r := range reqs {
		if r.Outcome.Result == nil {
			valid = append(valid, i)
			continue
		}
		b, err := json.Marshal(r.Outcome.Result)
		if err != nil {
			out[i] = fmt.Errorf("finish run %d: encode result: %w", r.Claim.RunID, err)
			continue
		}
		s := string(b)
		results[i] = &s
		valid = append(valid, i)
	}
	type attemptKey struct {
		id      int64
		attempt int
	}
	validReqs := make([]FinishRequest, len(valid))
	for j, i := range valid {
		validReqs[j] = reqs[i]
	}
	first, again := splitRepeats(validReqs, func(r FinishRequest) attemptKey { return attemptKey{r.Claim.RunID, r.Claim.Attempt} },
		func(a, b attemptKey) int { return cmp.Or(cmp.Compare(a.id, b.id), a.attempt-b.attempt) })
	n := len(first)
	if n == 0 {
		return out, nil
	}
	ids, attempts := make([]int64, n), make([]int32, n)
	statuses, texts, resultArg := make([]string, n), make([]string, n), make([]*string, n)
	var logs []LogBatch
	for j, v := range first {
		r := validReqs[v]
		ids[j], attempts[j], statuses[j] = r.Claim.RunID, int32(r.Claim.Attempt), string(r.Outcome.Status)
		if r.Outcome.Log != nil {
			logs = append(logs, *r.Outcome.Log)
		}
		resultArg[j] = results[valid[v]]
		if r.Outcome.Err != nil {
			texts[j] = r.Outcome.Err.Error()
		}
	}
	// One statement: the attempt number fences each run row, which also holds the attempt.
	// Runs are found by primary key only (an index on status, the live-run index of earlier
	// releases, once made the planner read every live run of the node for each batch; "IS
	// TRUE" keeps any such index out). No index covers a column it changes, so it is HOT.
	// Planned per call (see takeOverRuns): a generic plan made on a small table would scan it.
	query, args := finishSQL, []any{pgx.QueryExecModeExec, ids, attempts, statuses, resultArg, texts}
	if la := logArgsOf(logs); !la.empty() {
		query, args = logCTEs(6)+finishSQL, append(args, la.args()...)
	}
	rows, err := l.db.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("finish %s: %w", describeFinishes(ids), err)
	}
	done := make(map[attemptKey]bool, n) // true: recorded cancelled instead
	var k attemptKey
	var cancelled bool
	if _, err := pgx.ForEachRow(rows, []any{&k.id, &k.attempt, &cancelled}, func() error { done[k] = cancelled; return nil }); err != nil {
		return nil, fmt.Errorf("finish %s: %w", describeFinishes(ids), err)
	}
	for _, v := range first {
		r := validReqs[v]
		switch cancelled, ok := done[attemptKey{r.Claim.RunID, r.Claim.Attempt}]; {
		case !ok:
			out[valid[v]] = fmt.Errorf("finish run %d attempt %d: %w", r.Claim.RunID, r.Claim.Attempt, ErrLostClaim)
		case cancelled:
			out[valid[v]] = fmt.Errorf("finish run %d attempt %d as %s: %w", r.Claim.RunID, r.Claim.Attempt, r.Outcome.Status, ErrRecordedCancelled)
		}
	}
	if len(again) > 0 {
		// A repeated outcome of one attempt finds it finished by the first: lost, as when
		// it comes one after the other.
		rest := make([]FinishRequest, len(again))
		for j, v := range again {
			rest[j] = validReqs[v]
			rest[j].Outcome.Log = nil // written with the first
		}
		errs, err := l.FinishRuns(ctx, rest)
		for j, v := range again {
			if err != nil { // the first outcomes are recorded; only the repeats failed
				out[valid[v]] = err
				continue
			}
			out[valid[v]] = errs[j]
		}
	}
	return out, nil
}

func describeFinishes(ids []int64) string {
	if len(ids) == 1 {
		return fmt.Sprintf("run %d", ids[0])
	}
	return fmt.Sprintf("%d runs", len(ids))
}

// Heartbeat refreshes the heartbeat of the runs this node holds. It returns the ids it could
// not refresh: those were taken over, and their handlers should stop.
func (l *Ledger) Heartbeat(ctx context.Context, node string, claims []Claim) (lost []int64, err error) {
	if len(claims) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(claims))
	attempts := make([]int32, len(claims))
	for i, c := range claims {
		ids[i], attempts[i] = c.RunID, int32(c.Attempt)
	}
	rows, err := l.db.Query(ctx, heartbeatSQL, pgx.QueryExecModeExec, ids, attempts, node) // by primary key, as FinishRuns
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	kept, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	alive := make(map[int64]bool, len(kept))
	for _, id := range kept {
		alive[id] = true
	}
	for _, id := range ids {
		if !alive[id] {
			lost = append(lost, id)
		}
	}
	return lost, nil
}

// OtherRunning reports whether another run of jobName (not runKey) is running with a fresh
// heartbeat: the overlap policy skip_if_running uses it.
func (l *Ledger) OtherRunning(ctx context.Context, jobName, runKey string, staleAfter time.Duration) (bool, error) {
	var n int
	err := l.db.QueryRow(ctx, `SELECT count(*) FROM job_runs j
		WHERE j.id = ANY (ARRAY(SELECT id FROM job_runs_inflight WHERE job = $1))
		  AND j.run_key <> $2 AND j.status = 'running' AND j.heartbeat_at >= now() - $3::interval`,
		jobName, runKey, staleAfter.String()).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("check running %s: %w", jobName, err)
	}
	return n > 0, nil
}

// reapStaleSQL finds runs whose node stopped heartbeating among those in job_runs_inflight and
// marks them; the run columns follow RETURNING. Like every query of runs in flight, it names
// them as = ANY of the array of in-flight ids, which the planner can only meet with the
// primary key of job_runs (TestHotStatementsFindRunsByKey): written as a join, statistics of a
// table of mostly finished runs, saying few are running, made it read all of job_runs.
const reapStaleSQL = `
		WITH stale AS (
			SELECT j.id FROM job_runs j
			WHERE j.id = ANY (ARRAY(SELECT id FROM job_runs_inflight))
			  AND ((j.status = 'running' AND j.heartbeat_at < now() - $1::interval)
			   -- an abandoned run nobody claimed since it was republished: publish it again
			   OR (j.status = 'abandoned' AND j.updated_at < now() - $1::interval))
			ORDER BY j.heartbeat_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		UPDATE job_runs r SET updated_at = now(),
			-- a cancel request its node never saw (it vanished): the run ends cancelled, unpublished
			status = CASE WHEN r.cancel_requested_at IS NULL THEN 'abandoned' ELSE 'cancelled' END,
			finished_at = CASE WHEN r.cancel_requested_at IS NULL THEN NULL ELSE now() END,
			error = CASE WHEN r.cancel_requested_at IS NULL THEN 'node ' || r.node || ' stopped heartbeating'
				ELSE 'cancelled by ' || r.cancel_requested_by END
		FROM stale WHERE r.id = stale.id
		RETURNING `

// ReapStale marks runs whose node stopped heartbeating as abandoned and returns them, so the
// ticker can publish them again.
func (l *Ledger) ReapStale(ctx context.Context, staleAfter time.Duration, limit int) ([]Run, error) {
	rows, err := l.db.Query(ctx, reapStaleSQL+prefixed("r.", runColumns), staleAfter.String(), limit)
	if err != nil {
		return nil, fmt.Errorf("reap stale runs: %w", err)
	}
	reaped, err := collectRuns(rows)
	if err != nil {
		return nil, fmt.Errorf("reap stale runs: %w", err)
	}
	republish := reaped[:0:0]
	for _, r := range reaped {
		if r.Status == StatusAbandoned {
			republish = append(republish, r)
		}
	}
	return republish, nil
}
