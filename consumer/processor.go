// Package consumer takes job messages, claims each run in the ledger, runs its handler under
// the job's timeout and records the outcome. A message crosses it once, in one direction:
//
//   - admit (admit.go): decode and validate the delivery once, pick its lane's priority and
//     its path: the delivery's shared claim, or alone (malformed, too early, overlap-checked,
//     a resent dead letter: alone.go);
//   - execute (execute.go): hold the claimed run until it is due, give it a handler slot
//     (fires first), call the handler under its timeout with panic recovery;
//   - decide (decide.go): a pure function from the handler's return and the run's state to
//     the ledger status and the broker's decision;
//   - record (record.go): the fenced finish, metrics, alert and log lines.
//
// Heartbeat (heartbeat.go) and drain (drain.go) stand beside that path, and run control
// (runcontrol.go) brings cancel requests and run logs. A claimed run that waits for its time
// or a slot is an entry in a queue, not a goroutine: the goroutines and contexts are the
// running handlers'. The broker adapter lives in package mq; this package knows deliveries
// and decisions only.
package consumer

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// Ledger is what the processor needs of the ledger. prio is ledger.First for the schedule
// lane's claims and outcomes.
type Ledger interface {
	ClaimRun(ctx context.Context, env job.Envelope, node, msgID string, staleAfter time.Duration, prio ledger.Priority) (ledger.Claim, error)
	Finish(ctx context.Context, c ledger.Claim, o ledger.Outcome, prio ledger.Priority) error
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

// errDraining is the cancel cause of runs interrupted by shutdown.
var errDraining = errors.New("node is shutting down")

// ErrLedgerUnreachable is the cancel cause of runs stopped because their heartbeat could not
// reach the ledger for so long that another node may soon take them over.
var ErrLedgerUnreachable = errors.New("ledger unreachable: heartbeat failing, run stopped before another node takes it over")

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

	// inHand holds, per lane, one token per message of a delivery being claimed or run
	// (Goroutines, ScheduleGoroutines): see ProcessLane.
	inHand [2]chan struct{}
	// drained is closed when the drain starts: deliveries waiting for a token give up.
	drained chan struct{}

	mu sync.Mutex
	// running holds every claimed run in hand, waiting or started, until its outcome is
	// recorded: what the heartbeat covers and a cancel request reaches.
	running  map[int64]*run
	slots    slotGate // handler slots (max_running), fires first
	draining bool
	wg       sync.WaitGroup // deliveries in progress
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
		log: log, now: now, running: map[int64]*run{},
		slots:   slotGate{free: cfg.MaxRunning},
		inHand:  [2]chan struct{}{LaneJobs: make(chan struct{}, cfg.Goroutines), LaneSchedule: make(chan struct{}, cfg.ScheduleGoroutines)},
		drained: make(chan struct{})}
}

// InHand is how many messages of lane the node holds at once (goroutines,
// schedule_goroutines): the broker adapter runs as many deliveries at once, since a long run
// keeps its delivery until it ends.
func (p *Processor) InHand(lane Lane) int { return cap(p.inHand[lane]) }

// ConsumeBatch is how many messages one delivery should hand over at once.
func (p *Processor) ConsumeBatch() int { return p.cfg.ConsumeBatch }

func (p *Processor) spec(kind string) job.Spec {
	if s, ok := p.specs[kind]; ok {
		return s
	}
	return job.Spec{}.WithDefaults()
}

func (p *Processor) retryPolicy() backoff {
	return backoff{first: p.cfg.RetryBackoff, max: p.cfg.RetryBackoffMax}
}

// Process handles one delivery on its own, on the job lane. ctx bounds the whole
// processing; it is cancelled only when the node gives up on draining.
func (p *Processor) Process(ctx context.Context, d Delivery) Decision {
	if !p.enter() {
		return refused
	}
	defer p.wg.Done()
	a := p.admit(d, p.now())
	return p.alone(ctx, LaneJobs, &a)
}

// ProcessBatch is ProcessLane for the job lane.
func (p *Processor) ProcessBatch(ctx context.Context, ds []Delivery) []Decision {
	return p.ProcessLane(ctx, LaneJobs, ds)
}

// refused answers a delivery that arrives once the drain began.
var refused = Decision{Action: RetryLater, After: time.Second, Reason: "node draining"}

// enter counts a delivery in, unless the drain began.
func (p *Processor) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.draining {
		return false
	}
	p.wg.Add(1)
	return true
}
