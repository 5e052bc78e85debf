// Package consumer takes job messages from RocketMQ, claims each run in the ledger, runs its
// handler under the job's timeout and records the outcome. The decision logic (Processor) is
// separate from the RocketMQ push consumer (Consumer) so it can be read and tested alone.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/runlog"
)

// Ledger is what the processor needs of the ledger.
type Ledger interface {
	ClaimRun(ctx context.Context, env job.Envelope, node, msgID string, staleAfter time.Duration) (ledger.Claim, error)
	Finish(ctx context.Context, c ledger.Claim, o ledger.Outcome) error
	Heartbeat(ctx context.Context, node string, claims []ledger.Claim) ([]int64, error)
	OtherRunning(ctx context.Context, jobName, runKey string, staleAfter time.Duration) (bool, error)
	RecordRejected(ctx context.Context, r ledger.Rejection) error
	SkipFresh(ctx context.Context, env job.Envelope, node string, why any) (bool, ledger.Status, error)
}

// Registry finds the handler of a job kind.
type Registry interface {
	Known(kind string) bool
	Prepare(env job.Envelope) (job.Prepared, error)
}

// Publisher re-publishes a message that arrived before its time.
type Publisher interface {
	Publish(ctx context.Context, env job.Envelope, deliverAt time.Time) (string, error)
}

// Observer is told about outcomes, for metrics. All methods must be cheap and safe for
// concurrent use.
type Observer interface {
	RunFinished(jobName string, status ledger.Status, duration time.Duration, scheduleDelay time.Duration)
	MessageRejected(jobName string)
}

type nopObserver struct{}

func (nopObserver) RunFinished(string, ledger.Status, time.Duration, time.Duration) {}
func (nopObserver) MessageRejected(string)                                          {}

// Delivery is one message as the broker handed it over.
type Delivery struct {
	Body           []byte
	MsgID          string
	Tag            string
	ReconsumeTimes int
	// Topic is where the message came from: %DLQ%<group> when an operator resent a dead letter.
	Topic string
}

// Action is what the broker should do with a message after processing.
type Action int

// Actions.
const (
	Ack        Action = iota // done (succeeded, skipped, rejected, recorded failed)
	RetryLater               // redeliver after Decision.After
	DeadLetter               // attempts exhausted: send to the group's DLQ
)

// Decision is the processor's verdict on one delivery.
type Decision struct {
	Action Action
	After  time.Duration
	Reason string
}

// Config tunes the processor.
type Config struct {
	// Node names this process in the ledger (run.node, attempt rows); the config's top-level
	// node sets it.
	Node string `yaml:"node" deprecated:"set node (top level), which always replaced this key"`
	// HeartbeatInterval is how often running runs are marked alive: a sixth of stale_after
	// unless set.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval" deprecated:"set consumer.stale_after; the heartbeat interval is a sixth of it"`
	// StaleAfter: a running run whose heartbeat is older belongs to a vanished node and may be
	// taken over. Runs heartbeat six times within it, so one slow database round trip is not
	// death.
	StaleAfter time.Duration `yaml:"stale_after"`
	// DrainTimeout is how long a stopping node lets runs in flight finish before it
	// interrupts them.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// EarlyTolerance: a timer message that arrives this much before its scheduled_at (the
	// broker rounds delivery down to its timer precision) is held until then; one that is
	// earlier still is re-published as a timer message.
	// The config derives it from ticker.deliver_ahead (plus 2 s).
	EarlyTolerance time.Duration `yaml:"early_tolerance" deprecated:"set ticker.deliver_ahead; the hold is deliver_ahead plus 2s"`
	// RetryBackoff is the first retry delay; it doubles per attempt up to RetryBackoffMax.
	RetryBackoff    time.Duration `yaml:"retry_backoff"`
	RetryBackoffMax time.Duration `yaml:"retry_backoff_max"`
	// Goroutines is how many messages one node has in hand at once: decoded, being claimed,
	// waiting for a handler slot, running or being recorded. Waiting is cheap, and the more
	// messages are in hand the more claims and outcomes share one ledger statement; but every
	// claimed run in hand is heartbeated, so this also bounds the heartbeat statement.
	Goroutines int `yaml:"goroutines"`
	// ConsumeBatch is how many messages of one queue a delivery hands over at once (1..1024):
	// their runs are claimed together and their outcomes coalesced, each run still in its own
	// goroutine under max_running. Goroutines still bounds the messages claimed and in hand;
	// the rest of a delivery waits, unclaimed, for those to finish.
	// Default DefaultConsumeBatch.
	ConsumeBatch int `yaml:"consume_batch" deprecated:"remove it: the batch is the constant consumer.DefaultConsumeBatch (32)"`
	// ScheduleGoroutines is Goroutines for the schedule lane (the schedule topic's consumer):
	// its messages in hand have tokens of their own, so a fire never waits for one held by a
	// forced run. A fire takes one from its delivery, up to ticker.deliver_ahead before its
	// time, until its outcome is recorded: at least the fires of a second on one node. Half of
	// Goroutines unless set.
	ScheduleGoroutines int `yaml:"schedule_goroutines" deprecated:"set consumer.goroutines; the schedule lane gets half as many"`
	// MaxRunning is how many handlers run at once on one node: the limit that protects the
	// systems the jobs work on. A claimed run waits for a slot (heartbeating) before it starts.
	MaxRunning int `yaml:"max_running"`
	// LedgerBatch bounds the claims (and, separately, the outcomes) written in one ledger
	// statement; LedgerFlushers bounds such statements in flight at once, for each. Defaults
	// DefaultLedgerBatch and DefaultLedgerFlushers.
	LedgerBatch    int `yaml:"ledger_batch" deprecated:"remove it: the batch is the constant consumer.DefaultLedgerBatch (64)"`
	LedgerFlushers int `yaml:"ledger_flushers" deprecated:"remove it: the flushers are the constant consumer.DefaultLedgerFlushers (2)"`
}

// Settings only a benchmark turned, constants now, with what was measured (BENCHMARKS.md,
// "Batch consume" and the peers comparison).
const (
	// DefaultConsumeBatch: 128 instead of 32 gave +8% dispatch at goroutines 1000, inside
	// the ±20% run-to-run spread; 32 keeps a long run's delivery small.
	DefaultConsumeBatch = 32
	// DefaultLedgerBatch: 1000 did not move dispatch beyond the run-to-run spread; 64 keeps
	// one statement short.
	DefaultLedgerBatch = 64
	// DefaultLedgerFlushers: 1 did not move dispatch beyond the run-to-run spread; a second
	// statement in flight hides one slow round trip.
	DefaultLedgerFlushers = 2
)

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	switch {
	case c.StaleAfter == 0 && c.HeartbeatInterval == 0:
		c.StaleAfter = 30 * time.Second
	case c.StaleAfter == 0:
		c.StaleAfter = 6 * c.HeartbeatInterval
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = c.StaleAfter / 6
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.EarlyTolerance == 0 {
		c.EarlyTolerance = 3 * time.Second
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = 5 * time.Second
	}
	if c.RetryBackoffMax == 0 {
		c.RetryBackoffMax = 10 * time.Minute
	}
	if c.Goroutines == 0 {
		c.Goroutines = 64
	}
	if c.ConsumeBatch == 0 {
		c.ConsumeBatch = DefaultConsumeBatch
	}
	if c.ScheduleGoroutines == 0 {
		c.ScheduleGoroutines = max(1, c.Goroutines/2)
	}
	if c.MaxRunning == 0 {
		c.MaxRunning = 8
	}
	if c.LedgerBatch == 0 {
		c.LedgerBatch = DefaultLedgerBatch
	}
	if c.LedgerFlushers == 0 {
		c.LedgerFlushers = DefaultLedgerFlushers
	}
	return c
}

// Validate names the first bad key.
func (c Config) Validate() error {
	switch {
	case c.Node == "":
		return errors.New("node: required (defaults to the host name)")
	case c.HeartbeatInterval < 100*time.Millisecond:
		return fmt.Errorf("heartbeat_interval: %s is below 100ms", c.HeartbeatInterval)
	case c.StaleAfter < 2*c.HeartbeatInterval:
		return fmt.Errorf("stale_after: %s must be at least twice heartbeat_interval (%s)", c.StaleAfter, c.HeartbeatInterval)
	case c.DrainTimeout < 0:
		return fmt.Errorf("drain_timeout: %s is negative", c.DrainTimeout)
	case c.RetryBackoff < 0 || c.RetryBackoffMax < c.RetryBackoff:
		return fmt.Errorf("retry_backoff: %s..%s is not a range", c.RetryBackoff, c.RetryBackoffMax)
	case c.Goroutines < 1 || c.Goroutines > 1000:
		return fmt.Errorf("goroutines: %d is outside 1..1000", c.Goroutines)
	case c.ConsumeBatch < 1 || c.ConsumeBatch > 1024:
		return fmt.Errorf("consume_batch: %d is outside 1..1024", c.ConsumeBatch)
	case c.ScheduleGoroutines < 1 || c.ScheduleGoroutines > 1000:
		return fmt.Errorf("schedule_goroutines: %d is outside 1..1000", c.ScheduleGoroutines)
	case c.MaxRunning < 1 || c.MaxRunning > c.Goroutines:
		return fmt.Errorf("max_running: %d is outside 1..goroutines (%d)", c.MaxRunning, c.Goroutines)
	case c.LedgerBatch < 1 || c.LedgerBatch > 1000:
		return fmt.Errorf("ledger_batch: %d is outside 1..1000", c.LedgerBatch)
	case c.LedgerFlushers < 1 || c.LedgerFlushers > 16:
		return fmt.Errorf("ledger_flushers: %d is outside 1..16", c.LedgerFlushers)
	}
	return nil
}

// errDraining is the cancel cause of runs interrupted by shutdown.
var errDraining = errors.New("node is shutting down")

// ErrLedgerUnreachable is the cancel cause of runs stopped because their heartbeat could not
// reach the ledger for so long that another node may soon take them over.
var ErrLedgerUnreachable = errors.New("ledger unreachable: heartbeat failing, run stopped before another node takes it over")

type inflight struct {
	claim  ledger.Claim
	env    job.Envelope
	cancel context.CancelCauseFunc
	// aliveAt is when the ledger last saw this run's heartbeat, on this node's clock: the send
	// time of the claim or of the last heartbeat that refreshed it (both earlier than the
	// database's heartbeat_at, so stopping by it is on the safe side).
	aliveAt time.Time
	stopped bool
	logs    *runlog.Buffer // what the handler logs; flushed on heartbeat and at the end
}

// Processor decides what happens to each delivery. It is safe for concurrent use.
type Processor struct {
	cfg      Config
	ledger   Ledger
	registry Registry
	specs    map[string]job.Spec
	pub      Publisher
	obs      Observer
	alerter  Alerter
	log      *slog.Logger
	now      func() time.Time

	// slots bounds the handlers running (MaxRunning), fires first (see slotGate).
	slots *slotGate
	// inHand holds, per lane, one token per message of a batch being claimed or run
	// (Goroutines, ScheduleGoroutines): see ProcessBatch.
	inHand [2]chan struct{}
	// drained is closed when Drain starts: runs still waiting for a slot give up.
	drained chan struct{}

	mu       sync.Mutex
	running  map[int64]inflight
	draining bool
	wg       sync.WaitGroup
}

// NewProcessor wires a processor. specs holds each job's policies (defaults applied); a job
// without a spec gets the defaults.
func NewProcessor(cfg Config, l Ledger, reg Registry, specs map[string]job.Spec, pub Publisher, obs Observer,
	log *slog.Logger, now func() time.Time) *Processor {
	if obs == nil {
		obs = nopObserver{}
	}
	cfg = cfg.WithDefaults()
	return &Processor{cfg: cfg, ledger: l, registry: reg, specs: specs, pub: pub, obs: obs,
		log: log, now: now, running: map[int64]inflight{},
		slots:   newSlotGate(cfg.MaxRunning),
		inHand:  [2]chan struct{}{LaneJobs: make(chan struct{}, cfg.Goroutines), LaneSchedule: make(chan struct{}, cfg.ScheduleGoroutines)},
		drained: make(chan struct{})}
}

func (p *Processor) spec(kind string) job.Spec {
	if s, ok := p.specs[kind]; ok {
		return s
	}
	return job.Spec{}.WithDefaults()
}

func (p *Processor) backoff(attempt int) time.Duration {
	d := p.cfg.RetryBackoff
	for i := 1; i < attempt && d < p.cfg.RetryBackoffMax; i++ {
		d *= 2
	}
	return min(d, p.cfg.RetryBackoffMax)
}

// Process handles one delivery. ctx bounds the whole processing; it is cancelled only when the
// node gives up on draining.
func (p *Processor) Process(ctx context.Context, d Delivery) Decision {
	p.mu.Lock()
	if p.draining {
		p.mu.Unlock()
		return Decision{Action: RetryLater, After: time.Second, Reason: "node draining"}
	}
	p.wg.Add(1)
	p.mu.Unlock()
	defer p.wg.Done()

	env, err := job.Decode(d.Body, p.now(), p.registry.Known)
	var prepared job.Prepared
	if err == nil {
		prepared, err = p.registry.Prepare(env)
	}
	if err != nil {
		return p.reject(ctx, d, env, err)
	}
	log := p.log.With("job", env.Job, "run_key", env.RunKey, "shard", env.Shard.Index, "msg_id", d.MsgID)
	spec := p.spec(env.Job)

	if early := env.ScheduledAt.Sub(p.now()); early > 0 {
		if early > p.cfg.EarlyTolerance {
			// Published without a delay (or by a clock far ahead): hold it in the broker, not here.
			if _, err := p.pub.Publish(ctx, env, env.ScheduledAt); err != nil {
				log.WarnContext(ctx, "re-publish of early message failed", "err", err)
				return Decision{Action: RetryLater, After: early, Reason: err.Error()}
			}
			log.InfoContext(ctx, "message arrived early, re-published as timer message", "early", early)
			return Decision{Action: Ack, Reason: "deferred"}
		}
		if spec.Overlap != job.OverlapSkipIfRunning && !fromDLQ(d) {
			// Claimed now, while the message is held (ticker.deliver_ahead): the claim's round
			// trip is then off the fire's path, and run holds the claimed run until its time
			// (heartbeated and cancellable like any run). The ledger records the attempt's start
			// no earlier than scheduled_at. A run with an overlap check is not: the check must
			// see the runs in flight at the fire time.
			claimSent := p.now()
			claim, err := p.ledger.ClaimRun(ctx, env, p.cfg.Node, d.MsgID, p.cfg.StaleAfter)
			return p.claimed(ctx, log, d, env, spec, prepared, claim, err, claimSent)
		}
		// The timer wheel rounds delivery down to its precision: wait out the remainder so a
		// run never starts before its scheduled time.
		select {
		case <-ctx.Done():
			return Decision{Action: RetryLater, After: time.Second, Reason: "stopping"}
		case <-time.After(early):
		}
	}

	// A resent dead letter is an operator's request about its own run, not a new occurrence
	// that could overlap: it goes to the claim (see retryDeadLetter).
	if spec.Overlap == job.OverlapSkipIfRunning && !fromDLQ(d) {
		busy, err := p.ledger.OtherRunning(ctx, env.Job, env.RunKey, p.cfg.StaleAfter)
		if err != nil {
			log.WarnContext(ctx, "overlap check failed, will retry", "err", err)
			return Decision{Action: RetryLater, After: p.backoff(d.ReconsumeTimes + 1), Reason: err.Error()}
		}
		if busy {
			skipped, found, err := p.ledger.SkipFresh(ctx, env, p.cfg.Node, map[string]string{"skipped": "another run of this job is running"})
			switch {
			case err != nil:
				return Decision{Action: RetryLater, After: p.backoff(d.ReconsumeTimes + 1), Reason: err.Error()}
			case skipped:
				log.InfoContext(ctx, "skipped: another run is in flight")
				return Decision{Action: Ack, Reason: "skipped"}
			case found.Terminal():
				return Decision{Action: Ack, Reason: "already " + string(found)}
			}
			// The run already had an attempt (a retry, or a run interrupted by a shutdown): it
			// must still run, so it waits for the other run instead of being skipped.
			log.InfoContext(ctx, "deferred: another run of this job is in flight", "status", found)
			return Decision{Action: RetryLater, After: p.cfg.StaleAfter, Reason: "deferred behind a running run"}
		}
	}

	claimSent := p.now()
	claim, err := p.ledger.ClaimRun(ctx, env, p.cfg.Node, d.MsgID, p.cfg.StaleAfter)
	return p.claimed(ctx, log, d, env, spec, prepared, claim, err, claimSent)
}

// claimed acts on the ledger's answer to the claim of d's run (err: the claim failed): run
// the handler, or tell the broker what to do with the message.
func (p *Processor) claimed(ctx context.Context, log *slog.Logger, d Delivery, env job.Envelope, spec job.Spec,
	prepared job.Prepared, claim ledger.Claim, err error, claimSent time.Time) Decision {
	if err != nil {
		log.WarnContext(ctx, "claim failed, will retry", "err", err)
		return Decision{Action: RetryLater, After: p.backoff(d.ReconsumeTimes + 1), Reason: err.Error()}
	}
	switch claim.Outcome {
	case ledger.AlreadyDone:
		if fromDLQ(d) && (claim.Status == ledger.StatusFailed || claim.Status == ledger.StatusCancelled) {
			return p.retryDeadLetter(ctx, log, d, claim)
		}
		log.InfoContext(ctx, "duplicate delivery of a finished run, acknowledged", "status", claim.Status)
		return Decision{Action: Ack, Reason: "already " + string(claim.Status)}
	case ledger.HeldElsewhere:
		// Keep the copy alive: if the holder dies, this delivery takes over once its heartbeat is stale.
		return Decision{Action: RetryLater, After: p.cfg.StaleAfter, Reason: "held by another node"}
	case ledger.TooOld:
		// Its run may have run and been pruned since: running it again is what the claim is
		// there to prevent. Recorded rejected, with the reason, like any message that cannot run.
		return p.reject(ctx, d, env, fmt.Errorf("too old: scheduled at %s, before the ledger's dedup horizon "+
			"(runs are kept for handlers.ledger_retention.runs); not run again", env.ScheduledAt.UTC().Format(time.RFC3339)))
	}
	return p.run(ctx, log.With("run_id", claim.RunID, "attempt", claim.Attempt), env, spec, claim, claimSent, prepared)
}

func (p *Processor) reject(ctx context.Context, d Delivery, env job.Envelope, cause error) Decision {
	name := env.Job
	if name == "" {
		name = d.Tag
	}
	if name == "" {
		name = "unknown"
	}
	if len(name) > 64 {
		name = name[:64]
	}
	p.log.WarnContext(ctx, "message rejected", "msg_id", d.MsgID, "job", name, "reason", cause.Error())
	err := p.ledger.RecordRejected(ctx, ledger.Rejection{Job: name, RunKey: env.RunKey, MsgID: d.MsgID,
		Node: p.cfg.Node, Reason: cause.Error(), Body: d.Body})
	if err != nil {
		// Never drop a message we could not record: let the broker bring it back.
		return Decision{Action: RetryLater, After: p.backoff(d.ReconsumeTimes + 1), Reason: err.Error()}
	}
	// The metric's label is the kind only when it is a registered one: anyone may publish,
	// and a label per made-up name would grow the registry without bound.
	label := name
	if !p.registry.Known(name) {
		label = "unknown"
	}
	p.obs.MessageRejected(label)
	return Decision{Action: Ack, Reason: "rejected"}
}

func (p *Processor) run(ctx context.Context, log *slog.Logger, env job.Envelope, spec job.Spec,
	claim ledger.Claim, claimSent time.Time, prepared job.Prepared) Decision {
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	logs := newRunBuffer(env, claim)
	p.mu.Lock()
	// This node may still be finishing an earlier attempt of the same run: one cut off from
	// the ledger stops its attempt, and once the ledger is back it can claim the run's next
	// attempt before the earlier one has recorded its (now lost) outcome. The newer attempt
	// owns the entry; the earlier one is over (its claim is gone) and must not touch it.
	if old, ok := p.running[claim.RunID]; ok && old.claim.Attempt < claim.Attempt {
		old.cancel(ledger.ErrLostClaim)
	}
	p.running[claim.RunID] = inflight{claim: claim, env: env, cancel: cancel, logs: logs, aliveAt: claimSent}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		// Only this attempt's own entry: deleting a newer attempt's would stop its heartbeat,
		// and another node would take over a run that is still running here (twice at once).
		if f, ok := p.running[claim.RunID]; ok && f.claim.Attempt == claim.Attempt {
			delete(p.running, claim.RunID)
		}
		p.mu.Unlock()
	}()

	var result any
	var runErr error
	start := p.now()
	// A run claimed while its message was held waits for its time first (see Process).
	runErr = p.holdUntil(runCtx, cancel, env.ScheduledAt)
	if runErr == nil {
		// The schedule lane's runs (ledger.WithPriority) take the next free slot before others.
		granted, abandon := p.slots.wait(ledger.HasPriority(ctx))
		gaveUp := func() {
			if abandon() {
				p.slots.release()
			}
		}
		select {
		case <-granted:
			// A slot and the drain can be ready at once (select picks either): the drain wins,
			// under the lock Drain sets it with, so no handler starts once the drain began.
			if !p.mayStart() {
				p.slots.release()
				cancel(errDraining)
				runErr = errors.New("not started: node is shutting down")
				break
			}
			start = p.now()
			// The summary line ("run finished") carries the schedule delay too; this one is for
			// following a run that is still going, at a cost per run that only debug pays.
			if log.Enabled(ctx, slog.LevelDebug) {
				log.DebugContext(ctx, "run started", "schedule_delay", start.Sub(env.ScheduledAt))
			}
			logs.Record(start, slog.LevelInfo, "run started", startAttrs(p.cfg.Node, env, claim, start)...)
			result, runErr = p.invoke(runlog.WithBuffer(runCtx, logs), spec.Timeout, claim, prepared)
			p.slots.release()
		case <-p.drained:
			// Claimed but never started: hand it back rather than start it during shutdown.
			gaveUp()
			cancel(errDraining)
			runErr = errors.New("not started: node is shutting down")
		case <-runCtx.Done():
			gaveUp()
			runErr = fmt.Errorf("not started: %w", context.Cause(runCtx))
		}
	}
	elapsed := p.now().Sub(start)

	var status ledger.Status
	var decision Decision
	var cancelled *ledger.CancelledError
	cause := context.Cause(runCtx)
	switch {
	case runErr == nil:
		status, decision = ledger.StatusSucceeded, Decision{Action: Ack}
	case errors.As(cause, &cancelled):
		// An operator asked: the run ends here, no retry.
		runErr = cancelled
		status, decision = ledger.StatusCancelled, Decision{Action: Ack, Reason: cancelled.Error()}
	case errors.Is(cause, ledger.ErrLostClaim):
		log.WarnContext(ctx, "run taken over by another node; outcome dropped", "err", runErr)
		return Decision{Action: Ack, Reason: "taken over"}
	case errors.Is(cause, errDraining):
		status, decision = ledger.StatusInterrupted, Decision{Action: RetryLater, After: time.Second, Reason: "interrupted by shutdown"}
	case errors.Is(cause, ErrLedgerUnreachable):
		status, decision = ledger.StatusInterrupted, Decision{Action: RetryLater, After: p.cfg.StaleAfter, Reason: cause.Error()}
	case job.IsDiscard(runErr) || claim.Attempt >= spec.MaxAttempts:
		status, decision = ledger.StatusFailed, Decision{Action: DeadLetter, Reason: runErr.Error()}
	default:
		after := p.backoff(claim.Attempt)
		if asked, ok := job.RetryAfter(runErr); ok {
			after = max(after, asked)
		}
		status, decision = ledger.StatusRetrying, Decision{Action: RetryLater, After: after, Reason: runErr.Error()}
	}

	// The outcome must reach the ledger even if the node is being torn down.
	finishCtx, cancelFinish := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancelFinish()
	outcome := ledger.Outcome{Status: status, Result: result, Err: runErr}
	p.recordOutcome(claim, logs, &outcome, elapsed)
	err := p.finish(finishCtx, claim, outcome)
	if errors.Is(err, ledger.ErrRecordedCancelled) {
		// Cancelled while it ran, ended before its heartbeat brought the request: the run is over.
		log.InfoContext(ctx, "run ended after a cancel request; recorded cancelled", "ended", status, "err", runErr)
		status, decision, err = ledger.StatusCancelled, Decision{Action: Ack, Reason: "cancelled"}, nil
	}
	if err != nil {
		if errors.Is(err, ledger.ErrLostClaim) {
			log.WarnContext(ctx, "run was taken over while it ran; outcome dropped", "status", status)
			return Decision{Action: Ack, Reason: "taken over"}
		}
		log.ErrorContext(ctx, "could not record outcome; message will be redelivered", "status", status, "err", err)
		return Decision{Action: RetryLater, After: p.cfg.StaleAfter, Reason: err.Error()}
	}
	p.trimLogs(finishCtx, log, claim)
	p.obs.RunFinished(env.Job, status, elapsed, start.Sub(env.ScheduledAt))
	if status == ledger.StatusFailed {
		p.alertFailed(ctx, log, env, claim.RunID, runErr, result)
	}
	level := slog.LevelInfo
	if status != ledger.StatusSucceeded {
		level = slog.LevelWarn
	}
	// The one line every finished attempt gets (issue 12): built without the variadic
	// []any boxing, since at thousands of runs a second it is most of the node's logging.
	attrs := [4]slog.Attr{slog.String("status", string(status)), slog.Int64("duration_ms", elapsed.Milliseconds()),
		slog.Duration("schedule_delay", start.Sub(env.ScheduledAt))}
	n := 3
	if runErr != nil {
		attrs[3], n = slog.String("err", runErr.Error()), 4
	}
	log.LogAttrs(ctx, level, "run finished", attrs[:n]...)
	return decision
}

// finish records an outcome, retrying briefly: a database blip must not turn a finished run
// into a rerun.
func (p *Processor) finish(ctx context.Context, c ledger.Claim, o ledger.Outcome) error {
	var err error
	for i := 0; i < 5; i++ {
		if err = p.ledger.Finish(ctx, c, o); err == nil || errors.Is(err, ledger.ErrLostClaim) || errors.Is(err, ledger.ErrRecordedCancelled) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(i+1) * 500 * time.Millisecond):
		}
	}
	return err
}

// invoke runs the handler under the job's timeout and turns a panic into an error: a
// panicking handler would otherwise block its queue's offset in the client for 15 minutes.
func (p *Processor) invoke(ctx context.Context, timeout time.Duration, claim ledger.Claim, prepared job.Prepared) (result any, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v\n%s", r, debug.Stack())
		}
	}()
	result, err = prepared(ctx, claim.RunID, claim.Attempt)
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("handler returned after its deadline: %w", ctx.Err())
	}
	return result, err
}

// Heartbeat marks the runs in flight alive once, and stops those another node took over.
// It gives the ledger a third of stale_after to answer: a connection that hangs must not
// keep the node from noticing that it is cut off.
func (p *Processor) Heartbeat(ctx context.Context) error {
	p.mu.Lock()
	claims := make([]ledger.Claim, 0, len(p.running))
	// A run claimed less than a quarter interval ago still has the heartbeat its claim wrote:
	// it cannot have gone stale (stale_after is at least two intervals), and the next beat
	// refreshes it well before stopUnheard's limit (2/3 of stale_after, at least 4/3 of an
	// interval). Short runs mostly end before their first beat, so the heartbeat statement
	// no longer grows with the throughput.
	young := p.now().Add(-p.cfg.HeartbeatInterval / 4)
	for _, f := range p.running {
		if f.aliveAt.After(young) {
			continue
		}
		claims = append(claims, f.claim)
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
	sentAttempt := make(map[int64]int, len(claims))
	for _, c := range claims {
		sentAttempt[c.RunID] = c.Attempt
	}
	gone := make(map[int64]bool, len(lost))
	for _, id := range lost {
		gone[id] = true
		// The attempt heartbeated is the one lost; a newer attempt claimed here since owns the
		// entry now and is not.
		if f, ok := p.running[id]; ok && f.claim.Attempt == sentAttempt[id] {
			f.cancel(ledger.ErrLostClaim)
		}
	}
	for _, c := range claims {
		if f, ok := p.running[c.RunID]; ok && !gone[c.RunID] && f.claim.Attempt == c.Attempt && sent.After(f.aliveAt) {
			f.aliveAt = sent
			p.running[c.RunID] = f
		}
	}
	p.mu.Unlock()
	return p.syncRuns(ctx)
}

// stopUnheard cancels the runs whose heartbeat has not reached the ledger for two thirds of
// stale_after: past stale_after another node may take them over, and the handler must have
// stopped by then, or the job runs twice at once. The last third is the handler's time to
// notice its context.
func (p *Processor) stopUnheard() {
	limit := p.cfg.StaleAfter * 2 / 3
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, f := range p.running {
		if f.stopped || now.Sub(f.aliveAt) < limit {
			continue
		}
		f.stopped = true
		p.running[id] = f
		f.cancel(ErrLedgerUnreachable)
		p.log.Error("ledger unreachable; stopping run before another node takes it over", "run_id", id,
			"attempt", f.claim.Attempt, "unheard_for", now.Sub(f.aliveAt).Round(time.Millisecond))
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

// InFlight returns how many runs this node is executing.
func (p *Processor) InFlight() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.running)
}

// BeginDrain refuses new messages and keeps runs that have not started from starting, at
// once; Drain then waits for the rest. The node calls it first thing on SIGTERM. Idempotent.
func (p *Processor) BeginDrain() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.draining {
		close(p.drained)
	}
	p.draining = true
}

// Draining reports whether BeginDrain was called (readiness answers 503 from then on).
func (p *Processor) Draining() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.draining
}

// mayStart reports whether a handler may start now: not once the drain has begun.
func (p *Processor) mayStart() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.draining
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
	for _, f := range p.running {
		f.cancel(errDraining)
	}
	p.mu.Unlock()
	p.log.Warn("drain deadline passed, interrupting runs", "runs", n)
	// Handlers that honour ctx return promptly and record "interrupted"; one that ignores it
	// is left behind, and its run is taken over by another node once its heartbeat goes stale.
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		p.log.Error("runs ignored cancellation; leaving them to be taken over", "runs", p.InFlight())
	}
	return n
}
