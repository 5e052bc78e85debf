// Package alert tells people about runs that ended failed, which includes the consistency
// checks that fail on purpose (sequence gaps, count deviations): a JSON webhook and an email,
// each de-duplicated in Postgres so a failed run sends one message per problem, not one per
// retry or per node; another run's failure is another message.
package alert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatplat/job-service/job"
)

// Config is the alerts section. Alerting is off unless a webhook URL or an SMTP host is set.
type Config struct {
	// WebhookURL receives a POST with the Alert JSON for every alert.
	WebhookURL string `yaml:"webhook_url"`
	// WebhookTimeout bounds one POST.
	WebhookTimeout time.Duration `yaml:"webhook_timeout"`
	SMTP           SMTPConfig    `yaml:"smtp"`
	// Window is how long the same problem stays quiet after an alert about it: a repeat of
	// the same run's failure, or of a handler's own fingerprint across runs.
	Window time.Duration `yaml:"window"`
}

// Enabled reports whether any channel is configured.
func (c Config) Enabled() bool { return c.WebhookURL != "" || c.SMTP.Host != "" }

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.WebhookTimeout == 0 {
		c.WebhookTimeout = 10 * time.Second
	}
	if c.Window == 0 {
		c.Window = 24 * time.Hour
	}
	c.SMTP = c.SMTP.WithDefaults()
	return c
}

// Validate names the first bad key.
func (c Config) Validate() error {
	if c.WebhookURL != "" {
		u, err := url.Parse(c.WebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("webhook_url: %q is not an http(s) URL", c.WebhookURL)
		}
	}
	if c.WebhookTimeout < 100*time.Millisecond {
		return fmt.Errorf("webhook_timeout: %s is below 100ms", c.WebhookTimeout)
	}
	if c.Window < time.Minute {
		return fmt.Errorf("window: %s is below 1m", c.Window)
	}
	if err := c.SMTP.Validate(); err != nil {
		return fmt.Errorf("smtp.%w", err)
	}
	return nil
}

// Kinds of alert.
const (
	KindRunFailed = "run_failed"
)

// Alert is the webhook's JSON body and the content of the email.
type Alert struct {
	Source string `json:"source"` // always "job-service"
	Kind   string `json:"kind"`   // run_failed
	Job    string `json:"job"`
	RunKey string `json:"run_key"`
	RunID  int64  `json:"run_id"`
	// Shard of the run whose failure this is; other shards alert on their own (same problem:
	// same dedupe key).
	Shard       job.Shard   `json:"shard"`
	Trigger     job.Trigger `json:"trigger"`
	ScheduledAt time.Time   `json:"scheduled_at"`
	Node        string      `json:"node"`
	Error       string      `json:"error"`
	// Result is the run's result JSON (what the handler found), when it had one and it is
	// at most 32 KiB.
	Result json.RawMessage `json:"result,omitempty"`
	// Fingerprint names the problem: a handler's own (job.WithProblem) or the error text with
	// numbers, times and ids masked. DedupeKey is job + ":" + a hash of the handler's
	// fingerprint, or of the run key and the masked text: without a handler's fingerprint
	// only repeats of the same run share a key.
	Fingerprint string `json:"fingerprint"`
	DedupeKey   string `json:"dedupe_key"`
	// Suppressed counts occurrences of this problem not sent since the previous alert.
	Suppressed int64     `json:"suppressed"`
	At         time.Time `json:"at"`
}

const maxResultBytes = 32 << 10

var (
	reTime = regexp.MustCompile(`\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)?`)
	reUUID = regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	reHex  = regexp.MustCompile(`(?i)\b(0x)?[0-9a-f]*[0-9][0-9a-f]*[a-f][0-9a-f]*\b|\b[0-9a-f]*[a-f][0-9a-f]*[0-9][0-9a-f]*\b`)
	reNum  = regexp.MustCompile(`\d+(\.\d+)?`)
	reWS   = regexp.MustCompile(`\s+`)
)

// Fingerprint names the problem behind err. A handler's own fingerprint wins; otherwise the
// error text with times, ids and numbers masked, so "deviation 0.12% (1003 vs 1002)" tonight
// and "deviation 0.13% (1004 vs 1002)" on the retry are one problem.
func Fingerprint(err error) string {
	if err == nil {
		return ""
	}
	if fp, ok := job.ProblemOf(err); ok {
		return fp
	}
	s := err.Error()
	s = reTime.ReplaceAllString(s, "<time>")
	s = reUUID.ReplaceAllString(s, "<id>")
	s = reHex.ReplaceAllStringFunc(s, func(m string) string {
		if len(m) >= 8 {
			return "<id>"
		}
		return m
	})
	s = reNum.ReplaceAllString(s, "#")
	s = strings.TrimSpace(reWS.ReplaceAllString(s, " "))
	return truncate(s, 1000)
}

// DedupeKey is job + ":" + a short hash of the fingerprint.
func DedupeKey(jobName, fingerprint string) string {
	sum := sha256.Sum256([]byte(fingerprint))
	return jobName + ":" + hex.EncodeToString(sum[:8])
}

// sender delivers one alert on one channel.
type sender interface {
	Channel() string
	Send(ctx context.Context, a *Alert) error
}

// Notifier sends alerts. RunFailed returns at once; delivery happens in the background so a
// slow mail server never holds up a run, and Close waits for deliveries in flight.
type Notifier struct {
	cfg     Config
	store   *store
	senders []sender
	node    string
	log     *slog.Logger
	now     func() time.Time

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	// retryDelays are the pauses between delivery attempts.
	retryDelays []time.Duration
	// failed, when set, is told of each delivery that failed after its retries (metrics).
	failed func(channel string)
}

// OnDeliveryFailed sets a function told of each delivery that failed after its retries, by
// channel (the node counts them in jobservice_alert_deliveries_failed_total). Call before use.
func (n *Notifier) OnDeliveryFailed(f func(channel string)) { n.failed = f }

// New returns a notifier for cfg (defaults applied, validated). The job_alerts table must
// exist (ledger.Migrate). node names this process in the alerts.
func New(cfg Config, db *pgxpool.Pool, node string, log *slog.Logger, now func() time.Time) (*Notifier, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	n := &Notifier{cfg: cfg, store: &store{db: db, window: cfg.Window}, node: node, log: log, now: now,
		retryDelays: []time.Duration{time.Second, 4 * time.Second}}
	if cfg.WebhookURL != "" {
		n.senders = append(n.senders, newWebhook(cfg.WebhookURL, cfg.WebhookTimeout))
	}
	if cfg.SMTP.Host != "" {
		n.senders = append(n.senders, &mailer{cfg: cfg.SMTP})
	}
	return n, nil
}

// RunFailed implements consumer.Alerter: it builds the alert and delivers it in the
// background. It never blocks on the network and never fails the caller.
func (n *Notifier) RunFailed(ctx context.Context, env job.Envelope, runID int64, runErr error, result any) {
	a := n.build(env, runID, runErr, result)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		n.log.Warn("alert dropped: notifier closed", "job", env.Job, "run_key", env.RunKey)
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		// Bounded, and detached from the run: the run is over, the alert still has to go.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if err := n.Notify(ctx, a); err != nil {
			n.log.Error("alert not delivered", "job", a.Job, "run_key", a.RunKey, "dedupe_key", a.DedupeKey, "err", err)
		}
	}()
}

func (n *Notifier) build(env job.Envelope, runID int64, runErr error, result any) *Alert {
	msg := "run failed"
	if runErr != nil {
		msg = runErr.Error()
	}
	fp := Fingerprint(runErr)
	if fp == "" {
		fp = msg
	}
	// Without a handler's own fingerprint the problem is this run's: the same error text from
	// another run (tomorrow night's) is a new alert, only repeats of this run are quiet.
	problem := fp
	if _, own := job.ProblemOf(runErr); !own {
		problem = "run " + env.RunKey + ": " + fp
	}
	a := &Alert{Source: "job-service", Kind: KindRunFailed, Job: env.Job, RunKey: env.RunKey, RunID: runID,
		Shard: env.Shard, Trigger: env.Trigger, ScheduledAt: env.ScheduledAt, Node: n.node, Error: msg,
		Fingerprint: fp, DedupeKey: DedupeKey(env.Job, problem), At: n.now().UTC()}
	if result != nil {
		if b, err := json.Marshal(result); err == nil && len(b) <= maxResultBytes && string(b) != "null" {
			a.Result = b
		}
	}
	return a
}

// Notify delivers a on every channel whose de-duplication row lets this node send it now.
// A channel whose delivery fails (after retries) gives its claim back, so a later occurrence
// tries again; the other channels are not re-sent.
func (n *Notifier) Notify(ctx context.Context, a *Alert) error {
	var errs []error
	for _, s := range n.senders {
		c, err := n.store.tryClaim(ctx, a, s.Channel(), n.now())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if c == nil {
			n.log.Info("alert suppressed: already sent within the window", "job", a.Job, "channel", s.Channel(),
				"dedupe_key", a.DedupeKey, "window", n.cfg.Window)
			continue
		}
		one := *a
		one.Suppressed = c.Suppressed
		err = n.deliver(ctx, s, &one)
		if err == nil {
			n.log.Info("alert sent", "job", a.Job, "run_key", a.RunKey, "channel", s.Channel(), "dedupe_key", a.DedupeKey)
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %w", s.Channel(), err))
		if n.failed != nil {
			n.failed(s.Channel())
		}
		relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if rerr := n.store.release(relCtx, c); rerr != nil {
			errs = append(errs, rerr)
		}
		cancel()
	}
	return errors.Join(errs...)
}

func (n *Notifier) deliver(ctx context.Context, s sender, a *Alert) error {
	var err error
	for i := 0; ; i++ {
		if err = s.Send(ctx, a); err == nil || i >= len(n.retryDelays) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(n.retryDelays[i]):
		}
	}
}

// Start is there for the node's list of services: a Notifier delivers from New on.
func (n *Notifier) Start(context.Context) error { return nil }

// Stop stops accepting alerts and waits for deliveries in flight until ctx ends. Idempotent.
func (n *Notifier) Stop(ctx context.Context) error {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("alerts still in flight at shutdown: %w", ctx.Err())
	}
}
