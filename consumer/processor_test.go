package consumer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// script is what a scriptLedger answers.
type script struct {
	claim ledger.Claim
	busy  bool
	lost  bool // Heartbeat reports every claim as taken over
	// cancelAsked: an operator asked to cancel the run while it ran; the ledger records an
	// attempt that failed or was interrupted as cancelled (ledger.ErrRecordedCancelled).
	cancelAsked bool
}

// scriptLedger is a Ledger whose answers each case sets, recording what it was told.
type scriptLedger struct {
	script
	mu         sync.Mutex
	finished   []ledger.Outcome
	skipped    int
	rejected   int
	heartbeats int
}

func (l *scriptLedger) ClaimRun(context.Context, job.Envelope, string, string, time.Duration, ledger.Priority) (ledger.Claim, error) {
	return l.claim, nil
}
func (l *scriptLedger) Finish(_ context.Context, _ ledger.Claim, o ledger.Outcome, _ ledger.Priority) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.finished = append(l.finished, o)
	switch o.Status {
	case ledger.StatusRetrying, ledger.StatusInterrupted, ledger.StatusFailed:
		if l.cancelAsked {
			return fmt.Errorf("finish run 7 as %s: %w", o.Status, ledger.ErrRecordedCancelled)
		}
	}
	return nil
}

// countAlerter counts the alerts it is asked to send.
type countAlerter struct{ n atomic.Int32 }

func (a *countAlerter) RunFailed(context.Context, job.Envelope, int64, error, any) { a.n.Add(1) }
func (l *scriptLedger) Heartbeat(_ context.Context, _ string, claims []ledger.Claim) ([]int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.heartbeats++
	if !l.lost {
		return nil, nil
	}
	ids := make([]int64, len(claims))
	for i, c := range claims {
		ids[i] = c.RunID
	}
	return ids, nil
}
func (l *scriptLedger) OtherRunning(context.Context, string, string, time.Duration) (bool, error) {
	return l.busy, nil
}
func (l *scriptLedger) RecordRejected(context.Context, ledger.Rejection) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rejected++
	return nil
}
func (l *scriptLedger) SkipFresh(context.Context, job.Envelope, string, any) (bool, ledger.Status, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.skipped++
	return true, ledger.StatusSkipped, nil
}

// funcRegistry knows one kind, "probe", whose handler is run.
type funcRegistry struct {
	run func(ctx context.Context) (any, error)
}

func (funcRegistry) Known(kind string) bool { return kind == "probe" }
func (r funcRegistry) Prepare(env job.Envelope) (job.Prepared, error) {
	if env.Job != "probe" {
		return nil, &job.RejectError{Field: "job", Reason: "unknown"}
	}
	return func(ctx context.Context, _ int64, _ int) (any, error) { return r.run(ctx) }, nil
}

type recPublisher struct {
	mu  sync.Mutex
	due []time.Time
}

func (p *recPublisher) Publish(_ context.Context, _ job.Envelope, deliverAt time.Time) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.due = append(p.due, deliverAt)
	return "m", nil
}

func probeBody(t *testing.T, scheduled time.Time) []byte {
	b, err := job.Encode(job.Envelope{Job: "probe", RunKey: "k", Trigger: job.TriggerSchedule,
		ScheduledAt: scheduled, Shard: job.Shard{Total: 1}})
	require.NoError(t, err)
	return b
}

func claimed(attempt int) ledger.Claim {
	return ledger.Claim{Outcome: ledger.Claimed, RunID: 7, Attempt: attempt, Status: ledger.StatusRunning}
}

func TestProcessorDecisions(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) (any, error) { return "done", nil }
	// blockUntilCancelled runs until its context ends and says why.
	blockUntilCancelled := func(started chan<- struct{}) func(ctx context.Context) (any, error) {
		return func(ctx context.Context) (any, error) {
			close(started)
			<-ctx.Done()
			return nil, context.Cause(ctx)
		}
	}
	cases := []struct {
		name     string
		body     func(t *testing.T) []byte
		script   script
		spec     job.Spec
		run      func(ctx context.Context) (any, error)
		during   func(t *testing.T, p *Processor, started <-chan struct{}) // runs while the handler does
		blocking bool                                                      // run is blockUntilCancelled
		want     Decision
		status   ledger.Status // outcome recorded; "" for none
		check    func(t *testing.T, l *scriptLedger, pub *recPublisher)
	}{
		{name: "succeeds", script: script{claim: claimed(1)}, run: ok,
			want: Decision{Action: Ack}, status: ledger.StatusSucceeded},
		{name: "early message is re-published as a timer message",
			body:   func(t *testing.T) []byte { return probeBody(t, time.Now().Add(time.Hour)) },
			script: script{claim: claimed(1)}, run: ok,
			want: Decision{Action: Ack, Reason: "deferred"},
			check: func(t *testing.T, _ *scriptLedger, pub *recPublisher) {
				require.Len(t, pub.due, 1)
				require.WithinDuration(t, time.Now().Add(time.Hour), pub.due[0], time.Minute)
			}},
		{name: "slightly early message waits and runs",
			body:   func(t *testing.T) []byte { return probeBody(t, time.Now().Add(50*time.Millisecond)) },
			script: script{claim: claimed(1)}, run: ok,
			want: Decision{Action: Ack}, status: ledger.StatusSucceeded},
		{name: "overlap: skipped while another run is running", script: script{claim: claimed(1), busy: true}, run: ok,
			want:  Decision{Action: Ack, Reason: "skipped"},
			check: func(t *testing.T, l *scriptLedger, _ *recPublisher) { require.Equal(t, 1, l.skipped) }},
		{name: "overlap allowed: runs although another is running", script: script{claim: claimed(1), busy: true},
			spec: job.Spec{Overlap: job.OverlapAllow}, run: ok, want: Decision{Action: Ack}, status: ledger.StatusSucceeded},
		{name: "already done: acknowledged, not run",
			script: script{claim: ledger.Claim{Outcome: ledger.AlreadyDone, RunID: 7, Status: ledger.StatusSucceeded}},
			run:    func(context.Context) (any, error) { panic("must not run") },
			want:   Decision{Action: Ack, Reason: "already succeeded"}},
		{name: "held elsewhere: kept alive until the holder's heartbeat is stale",
			script: script{claim: ledger.Claim{Outcome: ledger.HeldElsewhere, RunID: 7, Status: ledger.StatusRunning}},
			run:    func(context.Context) (any, error) { panic("must not run") },
			want:   Decision{Action: RetryLater, After: 3 * time.Second, Reason: "held by another node"}},
		{name: "unknown kind is rejected and acknowledged",
			body: func(t *testing.T) []byte {
				return []byte(`{"job":"nope","run_key":"k","trigger":"manual","scheduled_at":"` +
					time.Now().UTC().Format(time.RFC3339) + `","shard":{"index":0,"total":1}}`)
			},
			run: ok, want: Decision{Action: Ack, Reason: "rejected"},
			check: func(t *testing.T, l *scriptLedger, _ *recPublisher) { require.Equal(t, 1, l.rejected) }},
		{name: "discard: failed at once, dead-lettered", script: script{claim: claimed(1)},
			run:    func(context.Context) (any, error) { return nil, job.Discard("bad data", errors.New("row 3")) },
			want:   Decision{Action: DeadLetter, Reason: "bad data: row 3"},
			status: ledger.StatusFailed},
		{name: "plain failure: retried with backoff", script: script{claim: claimed(2)},
			run:    func(context.Context) (any, error) { return nil, errors.New("flaky") },
			want:   Decision{Action: RetryLater, After: 2 * time.Second, Reason: "flaky"},
			status: ledger.StatusRetrying},
		{name: "retry-after: the handler's delay wins over a shorter backoff", script: script{claim: claimed(1)},
			run:    func(context.Context) (any, error) { return nil, job.Retry(time.Hour, errors.New("rate limited")) },
			want:   Decision{Action: RetryLater, After: time.Hour, Reason: "retry after 1h0m0s: rate limited"},
			status: ledger.StatusRetrying},
		{name: "retry-after at the attempts cap: failed, not retried", script: script{claim: claimed(4)},
			run:    func(context.Context) (any, error) { return nil, job.Retry(time.Minute, errors.New("rate limited")) },
			want:   Decision{Action: DeadLetter, Reason: "retry after 1m0s: rate limited"},
			status: ledger.StatusFailed},
		{name: "panic: a recorded failure, retried", script: script{claim: claimed(1)},
			run:    func(context.Context) (any, error) { panic("boom") },
			want:   Decision{Action: RetryLater, After: time.Second},
			status: ledger.StatusRetrying,
			check: func(t *testing.T, l *scriptLedger, _ *recPublisher) {
				require.ErrorContains(t, l.finished[0].Err, "handler panicked: boom")
			}},
		{name: "cancel asked while a failing attempt ran: cancelled, acknowledged, not retried",
			script: script{claim: claimed(1), cancelAsked: true},
			run:    func(context.Context) (any, error) { return nil, errors.New("flaky") },
			want:   Decision{Action: Ack, Reason: "cancelled"}, status: ledger.StatusRetrying},
		{name: "cancel asked while the last attempt ran: cancelled, not dead-lettered", script: script{claim: claimed(4), cancelAsked: true},
			run:  func(context.Context) (any, error) { return nil, errors.New("broken") },
			want: Decision{Action: Ack, Reason: "cancelled"}, status: ledger.StatusFailed},
		{name: "cancel asked while a drained attempt ran: cancelled, not redelivered", script: script{claim: claimed(1), cancelAsked: true},
			blocking: true,
			during: func(t *testing.T, p *Processor, started <-chan struct{}) {
				<-started
				require.Equal(t, 1, p.Drain(context.Background()))
			},
			want: Decision{Action: Ack, Reason: "cancelled"}, status: ledger.StatusInterrupted},
		{name: "too old for the dedup horizon: rejected, not run",
			script: script{claim: ledger.Claim{Outcome: ledger.TooOld}},
			run:    func(context.Context) (any, error) { panic("must not run") },
			want:   Decision{Action: Ack, Reason: "rejected"},
			check:  func(t *testing.T, l *scriptLedger, _ *recPublisher) { require.Equal(t, 1, l.rejected) }},
		{name: "lost claim: outcome dropped, message acknowledged", script: script{claim: claimed(1), lost: true},
			blocking: true,
			during: func(t *testing.T, p *Processor, started <-chan struct{}) {
				<-started
				// A claim younger than a quarter interval is not beaten yet (see Heartbeat).
				require.Eventually(t, func() bool {
					require.NoError(t, p.Heartbeat(context.Background()))
					return p.InFlight() == 0
				}, 10*time.Second, 10*time.Millisecond)
			},
			want: Decision{Action: Ack, Reason: "taken over"}},
		{name: "drain: a run past the drain timeout is interrupted and redelivered", script: script{claim: claimed(1)},
			blocking: true,
			during: func(t *testing.T, p *Processor, started <-chan struct{}) {
				<-started
				require.Equal(t, 1, p.Drain(context.Background()))
			},
			want:   Decision{Action: RetryLater, After: time.Second, Reason: "interrupted by shutdown"},
			status: ledger.StatusInterrupted},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := &scriptLedger{script: tc.script}
			pub := &recPublisher{}
			started := make(chan struct{})
			run := tc.run
			if tc.blocking {
				run = blockUntilCancelled(started)
			}
			spec := tc.spec
			spec.MaxAttempts = 4
			cfg := Config{Node: "n", HeartbeatInterval: time.Second, StaleAfter: 3 * time.Second, DrainTimeout: 50 * time.Millisecond,
				EarlyTolerance: time.Second, RetryBackoff: time.Second, RetryBackoffMax: 10 * time.Second}
			p := NewProcessor(cfg, l, funcRegistry{run: run}, map[string]job.Spec{"probe": spec.WithDefaults()}, pub, nil,
				discard(), time.Now)
			alerts := &countAlerter{}
			p.SetAlerter(alerts)
			body := probeBody(t, time.Now().Add(-time.Second))
			if tc.body != nil {
				body = tc.body(t)
			}
			var wg sync.WaitGroup
			if tc.during != nil {
				wg.Add(1)
				go func() { defer wg.Done(); tc.during(t, p, started) }()
			}
			got := p.Process(context.Background(), Delivery{Body: body, MsgID: "m1", Tag: "probe"})
			wg.Wait()
			if tc.want.Reason == "" && got.Action == tc.want.Action && tc.status == ledger.StatusRetrying {
				got.Reason = "" // a panic's reason carries a stack
			}
			require.Equal(t, tc.want, got)
			if tc.status == "" {
				require.Empty(t, l.finished)
			} else {
				require.Len(t, l.finished, 1)
				require.Equal(t, tc.status, l.finished[0].Status)
			}
			if tc.check != nil {
				tc.check(t, l, pub)
			}
			if tc.script.cancelAsked {
				require.Zero(t, alerts.n.Load(), "a cancelled run alerts nobody")
			}
		})
	}
}
