// Package ticker turns cron schedules into RocketMQ timer messages. Any node may run a ticker;
// only the holder of the Postgres lease publishes. Each occurrence is recorded in the ledger
// before it is published, keyed by job + scheduled_at + shard, so a restart or a new leader
// neither publishes twice nor misses one.
package ticker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// Publisher sends an envelope, held by the broker until deliverAt.
type Publisher interface {
	// Send publishes env and says where the broker stored it (kept with the run, so the
	// repair pass knows which runs a broker that left the cluster held).
	Send(ctx context.Context, env job.Envelope, deliverAt time.Time) (job.Receipt, error)
	// Republish sends a run again for the repair pass, placed anew for each turn (its first
	// queue may belong to a node that no longer consumes).
	Republish(ctx context.Context, env job.Envelope, turn int) (string, error)
}

// Ledger is what the ticker needs of the ledger.
type Ledger interface {
	RecordScheduled(ctx context.Context, env job.Envelope) (bool, error)
	MarkPublished(ctx context.Context, env job.Envelope, rc job.Receipt) error
	Unpublished(ctx context.Context, olderThan time.Duration, limit int) ([]ledger.Run, error)
	LastScheduled(ctx context.Context, jobName string) (time.Time, error)
	RecordSkipped(ctx context.Context, env job.Envelope, node string, why any) error
	Paused(ctx context.Context) (map[string]bool, error)
	ReapStale(ctx context.Context, staleAfter time.Duration, limit int) ([]ledger.Run, error)
	TouchOverdue(ctx context.Context, overdueAfter time.Duration, limit int) ([]ledger.Run, error)
	StuckRuns(ctx context.Context, olderThan time.Duration, limit int) ([]ledger.Run, error)
	NoteRepublished(ctx context.Context, id int64) (int, error)
	GiveUp(ctx context.Context, id int64, status ledger.Status, reason string) (bool, error)
	WaitingBrokers(ctx context.Context) ([]string, error)
	ForgetBroker(ctx context.Context, broker string) (int64, error)
}

// BrokerWatch says which of the given brokers left the cluster (mq.BrokerWatch).
type BrokerWatch interface {
	Gone(ctx context.Context, brokers []string) ([]string, error)
}

// Alerter is told about runs the repair pass gave up on (the consumer's alerter fits).
type Alerter interface {
	RunFailed(ctx context.Context, env job.Envelope, runID int64, err error, result any)
}

// LeaderLease is the cluster-wide leadership the ticker competes for.
type LeaderLease interface {
	TryAcquire(ctx context.Context) (bool, error)
	Check(ctx context.Context) error
	// Fresh is Check unless the lease answered very recently; called before every publish.
	Fresh(ctx context.Context) error
	Release(ctx context.Context)
}

// Config tunes the ticker.
type Config struct {
	// Enabled lets this node compete for leadership. Turn it off on nodes that should only consume.
	Enabled *bool `yaml:"enabled"`
	// Interval is how often the leader looks for due occurrences and checks its lease.
	Interval time.Duration `yaml:"interval"`
	// Lookahead: occurrences due within it are published now as timer messages, so the broker
	// delivers them on time even if the leader is busy or changing at that moment.
	Lookahead time.Duration `yaml:"lookahead"`
	// MisfireTolerance: an occurrence later than this is missed and follows the job's misfire policy.
	MisfireTolerance time.Duration `yaml:"misfire_tolerance"`
	// LeaseKey is the Postgres advisory lock key; all nodes of a cluster must agree on it.
	LeaseKey int64 `yaml:"lease_key"`
	// StaleAfter: running runs with an older heartbeat are abandoned and republished. The
	// config sets it to consumer.stale_after: one notion of stale for the whole cluster.
	StaleAfter time.Duration `yaml:"stale_after" deprecated:"set consumer.stale_after, which always replaced this key"`
	// RepairInterval is how often the leader republishes unpublished and abandoned runs.
	RepairInterval time.Duration `yaml:"repair_interval"`
	// OverdueAfter: a published run still not claimed this long after its time is published
	// again (its message never reached a consumer).
	OverdueAfter time.Duration `yaml:"overdue_after"`
	// LeaseTimeout bounds how long a leader that stops answering (frozen, partitioned, host
	// gone) keeps the lease: its database session is closed by the server after this long
	// without a word, and the leader pings it every interval. Three intervals, at least 15 s,
	// unless set.
	LeaseTimeout time.Duration `yaml:"lease_timeout" deprecated:"set ticker.interval; the lease timeout is three intervals, at least 15s"`
	// StuckAfter: an interrupted or retrying run untouched this long lost its message (the
	// broker's copy was lost or dead-lettered) and is published again. Keep it above
	// consumer.retry_backoff_max, the longest a retry legitimately waits: the config makes it
	// three times that unless set.
	StuckAfter time.Duration `yaml:"stuck_after" deprecated:"set consumer.retry_backoff_max; a run is stuck after three times it"`
	// MaxRepublish: a run the repair pass published this many times without it finishing is
	// given up (failed, with an alert) instead of being published forever.
	MaxRepublish int `yaml:"max_republish"`
	// DeliverAhead asks the broker to deliver each occurrence this much before its time; the
	// consumer holds an early message until its scheduled_at (up to deliver_ahead plus 2 s), so
	// the run still never starts early. Without it, the run starts late by the broker's timer
	// wheel (delivery is bucketed by timerPrecisionMs, 1 s unless the broker sets it) plus the
	// time the message waits in its queue and in the node before a goroutine takes it; ahead,
	// those happen before the fire time instead of after it.
	DeliverAhead time.Duration `yaml:"deliver_ahead"`
	// BrokerGoneAfter: a broker whose master has not answered for this long is gone, like one
	// the name server's route no longer lists, and the scheduled runs whose timer messages it
	// holds are published again on a live broker at the next repair pass, without waiting for
	// overdue_after. Shorter notices a dead host sooner; a broker that was only slow then
	// delivers its copies too, which the claim dedups.
	BrokerGoneAfter time.Duration `yaml:"broker_gone_after"`
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Enabled == nil {
		on := true
		c.Enabled = &on
	}
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.Lookahead == 0 {
		c.Lookahead = 30 * time.Second
	}
	if c.MisfireTolerance == 0 {
		c.MisfireTolerance = 10 * time.Second
	}
	if c.LeaseKey == 0 {
		c.LeaseKey = 0x6a6f6273 // "jobs"
	}
	if c.StaleAfter == 0 {
		c.StaleAfter = 30 * time.Second
	}
	if c.RepairInterval == 0 {
		c.RepairInterval = 10 * time.Second
	}
	if c.OverdueAfter == 0 {
		c.OverdueAfter = 10 * time.Minute
	}
	if c.LeaseTimeout == 0 {
		c.LeaseTimeout = max(15*time.Second, 3*c.Interval)
	}
	if c.StuckAfter == 0 {
		c.StuckAfter = 30 * time.Minute
	}
	if c.MaxRepublish == 0 {
		c.MaxRepublish = 10
	}
	if c.DeliverAhead == 0 {
		c.DeliverAhead = time.Second
	}
	if c.BrokerGoneAfter == 0 {
		c.BrokerGoneAfter = 30 * time.Second
	}
	return c
}

// Validate names the first bad key.
func (c Config) Validate() error {
	switch {
	case c.Interval < 10*time.Millisecond:
		return fmt.Errorf("interval: %s is below 10ms", c.Interval)
	case c.Lookahead < 0 || c.Lookahead > 24*time.Hour:
		return fmt.Errorf("lookahead: %s is outside 0..24h (timer messages are held up to 3 days)", c.Lookahead)
	case c.MisfireTolerance < c.Interval:
		return fmt.Errorf("misfire_tolerance: %s is below interval %s", c.MisfireTolerance, c.Interval)
	case c.RepairInterval < c.Interval:
		return fmt.Errorf("repair_interval: %s is below interval %s", c.RepairInterval, c.Interval)
	case c.OverdueAfter < c.RepairInterval:
		return fmt.Errorf("overdue_after: %s is below repair_interval %s", c.OverdueAfter, c.RepairInterval)
	case c.LeaseTimeout < 3*c.Interval:
		return fmt.Errorf("lease_timeout: %s is below three intervals (%s): the leader pings once per interval", c.LeaseTimeout, 3*c.Interval)
	case c.LeaseTimeout < time.Second || c.LeaseTimeout > 10*time.Minute:
		return fmt.Errorf("lease_timeout: %s is outside 1s..10m", c.LeaseTimeout)
	case c.StuckAfter < c.RepairInterval:
		return fmt.Errorf("stuck_after: %s is below repair_interval %s", c.StuckAfter, c.RepairInterval)
	case c.MaxRepublish < 1:
		return fmt.Errorf("max_republish: %d is below 1", c.MaxRepublish)
	case c.DeliverAhead < 0 || c.DeliverAhead > c.Lookahead:
		return fmt.Errorf("deliver_ahead: %s is outside 0..lookahead (%s)", c.DeliverAhead, c.Lookahead)
	case c.BrokerGoneAfter < time.Second || c.BrokerGoneAfter > 10*time.Minute:
		return fmt.Errorf("broker_gone_after: %s is outside 1s..10m", c.BrokerGoneAfter)
	}
	return nil
}

type scheduledJob struct {
	name     string
	spec     job.Spec
	schedule cron.Schedule
	cursor   time.Time // last occurrence handled; zero until read from the ledger
}

// State is what the ticker reports for readiness and the console.
type State struct {
	Leader      bool      `json:"leader"`
	LastTick    time.Time `json:"last_tick"`
	LastError   string    `json:"last_error,omitempty"`
	Published   int64     `json:"published"`
	Republished int64     `json:"republished"`
}

// Ticker publishes scheduled occurrences while it leads.
type Ticker struct {
	cfg    Config
	node   string
	ledger Ledger
	pub    Publisher
	lease  LeaderLease
	log    *slog.Logger
	now    func() time.Time
	jobs   []*scheduledJob

	mu         sync.Mutex
	state      State
	lastRepair time.Time
	onLeader   func(bool)
	known      func(kind string) bool
	alerter    Alerter
	brokers    BrokerWatch

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
}

// New returns a ticker for the enabled schedules in specs (defaults applied, validated).
func New(cfg Config, node string, specs map[string]job.Spec, l Ledger, pub Publisher, lease LeaderLease,
	log *slog.Logger, now func() time.Time) (*Ticker, error) {
	t := &Ticker{cfg: cfg.WithDefaults(), node: node, ledger: l, pub: pub, lease: lease, log: log, now: now}
	for name, spec := range specs {
		if !spec.IsEnabled() {
			continue
		}
		sched, err := spec.ParseSchedule()
		if err != nil {
			return nil, fmt.Errorf("jobs.%s: %w", name, err)
		}
		t.jobs = append(t.jobs, &scheduledJob{name: name, spec: spec, schedule: sched})
	}
	return t, nil
}

// SetKnown tells the repair pass which job kinds this build runs: a run of a kind that no
// longer exists is recorded rejected once instead of being republished. Call before Start.
func (t *Ticker) SetKnown(known func(kind string) bool) { t.known = known }

// SetBrokerWatch installs what tells the repair pass that a broker left the cluster (nil: only
// overdue_after finds runs stranded on a dead broker); call before Start.
func (t *Ticker) SetBrokerWatch(w BrokerWatch) { t.brokers = w }

// SetAlerter installs the alerter told about runs the repair pass gives up; call before Start.
func (t *Ticker) SetAlerter(a Alerter) { t.alerter = a }

// OnLeadershipChange registers a callback (metrics); call before Start.
func (t *Ticker) OnLeadershipChange(f func(leader bool)) { t.onLeader = f }

// State returns a snapshot of the ticker's state.
func (t *Ticker) State() State {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state
}

// Start runs the ticker loop in the background until Stop. The loop outlives ctx (which
// only bounds starting); Stop ends it.
func (t *Ticker) Start(ctx context.Context) error {
	ctx, t.cancel = context.WithCancel(context.WithoutCancel(ctx))
	t.done = make(chan struct{})
	go t.loop(ctx)
	return nil
}

// Stop ends the loop and gives up the lease. Idempotent.
func (t *Ticker) Stop(ctx context.Context) error {
	t.stopOnce.Do(func() {
		if t.cancel != nil {
			t.cancel()
			<-t.done
		}
		// Also when never started: a Tick may have taken the lease.
		// The lease gets its own few seconds: a drain that used up ctx must not keep the next
		// leader waiting for the lease to expire.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		t.lease.Release(ctx)
		t.setLeader(false)
	})
	return nil
}

func (t *Ticker) loop(ctx context.Context) {
	defer close(t.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		err := t.Tick(ctx)
		t.mu.Lock()
		t.state.LastTick = t.now()
		t.state.LastError = ""
		if err != nil {
			t.state.LastError = err.Error()
		}
		t.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			t.log.WarnContext(ctx, "ticker tick failed", "err", err)
		}
		timer.Reset(t.cfg.Interval)
	}
}

func (t *Ticker) setLeader(leader bool) {
	t.mu.Lock()
	changed := t.state.Leader != leader
	t.state.Leader = leader
	t.mu.Unlock()
	if !changed {
		return
	}
	if leader {
		t.log.Info("ticker leadership acquired", "node", t.node)
		for _, j := range t.jobs {
			j.cursor = time.Time{} // re-read: the previous leader may have moved on
		}
	} else {
		t.log.Warn("ticker leadership lost", "node", t.node)
	}
	if t.onLeader != nil {
		t.onLeader(leader)
	}
}

// Tick does one round: keep or take the lease, then publish due occurrences and repair.
// Exported so tests can drive the ticker step by step.
func (t *Ticker) Tick(ctx context.Context) error {
	if t.State().Leader {
		if err := t.lease.Check(ctx); err != nil {
			t.setLeader(false)
			return err
		}
	} else {
		ok, err := t.lease.TryAcquire(ctx)
		if err != nil || !ok {
			return err
		}
		t.setLeader(true)
	}
	paused, err := t.ledger.Paused(ctx)
	if err != nil {
		return err
	}
	var errs []error
	now := t.now()
	for _, j := range t.jobs {
		if err := t.scheduleJob(ctx, j, now, paused[j.name]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", j.name, err))
		}
	}
	t.mu.Lock()
	repairDue := now.Sub(t.lastRepair) >= t.cfg.RepairInterval
	if repairDue {
		t.lastRepair = now
	}
	t.mu.Unlock()
	if repairDue {
		errs = append(errs, t.repair(ctx))
	}
	return errors.Join(errs...)
}

func (t *Ticker) scheduleJob(ctx context.Context, j *scheduledJob, now time.Time, paused bool) error {
	if j.cursor.IsZero() {
		last, err := t.ledger.LastScheduled(ctx, j.name)
		if err != nil {
			return err
		}
		if last.IsZero() {
			last = now // a new job starts from now; nothing before it was ever due
		}
		j.cursor = last
	}
	if paused {
		return t.skipPaused(ctx, j, now)
	}
	horizon := now.Add(t.cfg.Lookahead)
	var missed []time.Time
	for next := j.schedule.Next(j.cursor); !next.After(horizon); next = j.schedule.Next(next) {
		if next.Before(now.Add(-t.cfg.MisfireTolerance)) {
			missed = append(missed, next)
			continue
		}
		if len(missed) > 0 {
			if err := t.misfire(ctx, j, missed, now); err != nil {
				return err
			}
			missed = nil
		}
		if err := t.publishOccurrence(ctx, j, next); err != nil {
			return err
		}
		j.cursor = next
	}
	if len(missed) > 0 {
		return t.misfire(ctx, j, missed, now)
	}
	return nil
}

func (t *Ticker) envelopes(j *scheduledJob, at time.Time) []job.Envelope {
	out := make([]job.Envelope, j.spec.Shards)
	for i := range out {
		out[i] = job.Envelope{Job: j.name, RunKey: job.ScheduleRunKey(j.name, at), Trigger: job.TriggerSchedule,
			ScheduledAt: at, Shard: job.Shard{Index: i, Total: j.spec.Shards}, Params: j.spec.ParamsJSON(),
			RequestedBy: "ticker@" + t.node}
	}
	return out
}

func (t *Ticker) publishOccurrence(ctx context.Context, j *scheduledJob, at time.Time) error {
	for _, env := range t.envelopes(j, at) {
		inserted, err := t.ledger.RecordScheduled(ctx, env)
		if err != nil {
			return err
		}
		if !inserted {
			continue // recorded by us or an earlier leader; the repair pass covers a lost publish
		}
		if err := t.send(ctx, env, at); err != nil {
			// The row stays unpublished; repair publishes it again.
			return err
		}
		t.mu.Lock()
		t.state.Published++
		t.mu.Unlock()
	}
	return nil
}

// send publishes env as a timer message due DeliverAhead before at (the consumer holds it
// until at) and marks it published.
func (t *Ticker) send(ctx context.Context, env job.Envelope, at time.Time) error {
	if err := t.fresh(ctx); err != nil {
		return err
	}
	rc, err := t.pub.Send(ctx, env, at.Add(-t.cfg.DeliverAhead))
	if err != nil {
		return fmt.Errorf("publish %s: %w", env.RunKey, err)
	}
	return t.ledger.MarkPublished(ctx, env, rc)
}

// misfire applies the job's misfire policy to occurrences nobody published in time.
func (t *Ticker) misfire(ctx context.Context, j *scheduledJob, missed []time.Time, now time.Time) error {
	latest := missed[len(missed)-1]
	log := t.log.With("job", j.name, "missed", len(missed), "first", missed[0], "last", latest)
	if j.spec.Misfire == job.MisfireFireOnce && now.Sub(latest) <= j.spec.MisfireBound {
		log.WarnContext(ctx, "missed occurrences; firing the latest once now")
		if err := t.publishOccurrence(ctx, j, latest); err != nil {
			return err
		}
	} else {
		log.WarnContext(ctx, "missed occurrences skipped", "policy", j.spec.Misfire)
		why := map[string]any{"misfire": string(j.spec.Misfire), "missed": len(missed),
			"first": missed[0], "last": latest}
		for _, env := range t.envelopes(j, latest) {
			if err := t.ledger.RecordSkipped(ctx, env, t.node, why); err != nil {
				return err
			}
		}
	}
	j.cursor = latest
	return nil
}

// skipPaused records the occurrences of a paused job that came to pass as skipped (reason
// paused), one row for those a tick finds (one each while the leader keeps up), so the ledger
// holds the cursor: a later leader starts after them instead of firing them as misfires.
// Occurrences still ahead are left for after the resume.
func (t *Ticker) skipPaused(ctx context.Context, j *scheduledJob, now time.Time) error {
	var passed []time.Time
	for next := j.schedule.Next(j.cursor); !next.After(now); next = j.schedule.Next(next) {
		passed = append(passed, next)
	}
	if len(passed) == 0 {
		return nil
	}
	latest := passed[len(passed)-1]
	why := map[string]any{"skipped": "paused", "occurrences": len(passed)}
	if len(passed) > 1 {
		why["first"] = passed[0]
	}
	for _, env := range t.envelopes(j, latest) {
		if err := t.ledger.RecordSkipped(ctx, env, t.node, why); err != nil {
			return err
		}
	}
	j.cursor = latest
	return nil
}

// repair publishes runs whose publish never completed, runs whose broker left the cluster,
// runs whose message never reached a consumer, and runs whose node vanished.
func (t *Ticker) repair(ctx context.Context) error {
	var errs []error
	// First, so the runs of a gone broker are published again by the step below, this pass.
	errs = append(errs, t.forgetGoneBrokers(ctx))
	unpublished, err := t.ledger.Unpublished(ctx, 2*t.cfg.Interval+5*time.Second, 500)
	if err != nil {
		errs = append(errs, err)
	}
	for _, r := range unpublished {
		env := runEnvelope(r)
		if err := t.send(ctx, env, r.ScheduledAt); err != nil {
			errs = append(errs, err)
			continue
		}
		t.countRepublished()
	}
	overdue, err := t.ledger.TouchOverdue(ctx, t.cfg.OverdueAfter, 500)
	if err != nil {
		errs = append(errs, err)
	}
	for _, r := range overdue {
		errs = append(errs, t.republish(ctx, r, "scheduled run overdue and unclaimed"))
	}
	reaped, err := t.ledger.ReapStale(ctx, t.cfg.StaleAfter, 500)
	if err != nil {
		errs = append(errs, err)
	}
	for _, r := range reaped {
		errs = append(errs, t.republish(ctx, r, "run abandoned by its node "+r.Node))
	}
	stuck, err := t.ledger.StuckRuns(ctx, t.cfg.StuckAfter, 500)
	if err != nil {
		errs = append(errs, err)
	}
	for _, r := range stuck {
		errs = append(errs, t.republish(ctx, r, string(r.Status)+" run without a message"))
	}
	return errors.Join(errs...)
}

// forgetGoneBrokers marks the scheduled runs whose timer messages are on a broker that left the
// cluster as unpublished. Their copies are on that broker's disk only: if it comes back it
// delivers them, and the claim recognises each as a run already taken or done.
func (t *Ticker) forgetGoneBrokers(ctx context.Context) error {
	if t.brokers == nil {
		return nil
	}
	waiting, err := t.ledger.WaitingBrokers(ctx)
	if err != nil {
		return err
	}
	// Asked also when no run waits: the watch counts a broker's silence from its first probe.
	gone, err := t.brokers.Gone(ctx, waiting)
	if err != nil {
		return err
	}
	var errs []error
	for _, b := range gone {
		n, err := t.ledger.ForgetBroker(ctx, b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if n > 0 {
			t.log.WarnContext(ctx, "broker left the cluster; publishing its scheduled runs again", "broker", b, "runs", n)
		}
	}
	return errors.Join(errs...)
}

// republish publishes a run the repair pass found waiting for a message that will not come.
// A run of a job kind this build no longer has is recorded rejected instead (once: it is then
// terminal), and one published max_republish times already is given up as failed, with an
// alert: whatever keeps it from finishing will not go away by publishing it again.
func (t *Ticker) republish(ctx context.Context, r ledger.Run, why string) error {
	log := t.log.With("job", r.Job, "run_key", r.RunKey, "shard", r.ShardIndex, "status", r.Status, "attempt", r.Attempt)
	if t.known != nil && !t.known(r.Job) {
		reason := fmt.Sprintf("job kind %q no longer exists; %s not republished", r.Job, why)
		if _, err := t.ledger.GiveUp(ctx, r.ID, ledger.StatusRejected, reason); err != nil {
			return err
		}
		log.WarnContext(ctx, "run of a job kind that no longer exists recorded rejected")
		return nil
	}
	n, err := t.ledger.NoteRepublished(ctx, r.ID)
	if err != nil {
		return err
	}
	if n > t.cfg.MaxRepublish {
		reason := fmt.Sprintf("republished %d times without finishing (last: %s); given up", n-1, why)
		if r.Attempt == 0 {
			// No node ever took it (its messages dead-lettered, or never arrived): the row says so.
			reason = "never claimed: " + reason
		}
		gave, err := t.ledger.GiveUp(ctx, r.ID, ledger.StatusFailed, reason)
		if err != nil || !gave {
			return err
		}
		log.ErrorContext(ctx, "run keeps being republished; given up", "republished", n-1)
		if t.alerter != nil {
			t.alerter.RunFailed(context.WithoutCancel(ctx), runEnvelope(r), r.ID, errors.New(reason), nil)
		}
		return nil
	}
	if err := t.fresh(ctx); err != nil {
		return err
	}
	log.WarnContext(ctx, why+"; republishing", "node", r.Node, "republished", n)
	if _, err := t.pub.Republish(ctx, runEnvelope(r), n); err != nil {
		return fmt.Errorf("republish %s %s: %w", r.Status, r.RunKey, err)
	}
	t.countRepublished()
	return nil
}

// fresh makes sure this node still leads right before it publishes: a leader frozen between
// deciding and sending must not publish what its successor already did.
func (t *Ticker) fresh(ctx context.Context) error {
	if err := t.lease.Fresh(ctx); err != nil {
		t.setLeader(false)
		return err
	}
	return nil
}

func (t *Ticker) countRepublished() {
	t.mu.Lock()
	t.state.Republished++
	t.mu.Unlock()
}

func runEnvelope(r ledger.Run) job.Envelope {
	return job.Envelope{Job: r.Job, RunKey: r.RunKey, Trigger: job.Trigger(r.Trigger), ScheduledAt: r.ScheduledAt,
		Shard: job.Shard{Index: r.ShardIndex, Total: r.ShardTotal}, Params: r.Params, RequestedBy: r.RequestedBy}
}
