package consumer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

type fakeLedger struct {
	mu       sync.Mutex
	attempt  int
	finished []ledger.Status
}

func (f *fakeLedger) ClaimRun(context.Context, job.Envelope, string, string, time.Duration, ledger.Priority) (ledger.Claim, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempt++
	return ledger.Claim{Outcome: ledger.Claimed, RunID: 7, Attempt: f.attempt, Status: ledger.StatusRunning}, nil
}
func (f *fakeLedger) Finish(_ context.Context, _ ledger.Claim, o ledger.Outcome, _ ledger.Priority) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finished = append(f.finished, o.Status)
	return nil
}
func (f *fakeLedger) Heartbeat(context.Context, string, []ledger.Claim) ([]int64, error) {
	return nil, nil
}
func (f *fakeLedger) OtherRunning(context.Context, string, string, time.Duration) (bool, error) {
	return false, nil
}
func (f *fakeLedger) RecordRejected(context.Context, ledger.Rejection) error { return nil }
func (f *fakeLedger) SkipFresh(context.Context, job.Envelope, string, any) (bool, ledger.Status, error) {
	return true, ledger.StatusSkipped, nil
}

type fakeRegistry struct{ err error }

func (fakeRegistry) Known(string) bool { return true }
func (r fakeRegistry) Prepare(job.Envelope) (job.Prepared, error) {
	return func(context.Context, int64, int) (any, error) { return map[string]int{"found": 3}, r.err }, nil
}

type recAlerter struct {
	calls []int64
	panic bool
}

func (r *recAlerter) RunFailed(_ context.Context, _ job.Envelope, runID int64, _ error, result any) {
	r.calls = append(r.calls, runID)
	if r.panic {
		panic("alerter broke")
	}
}

func body(t *testing.T) []byte {
	b, err := job.Encode(job.Envelope{Job: "probe", RunKey: "k", Trigger: job.TriggerManual,
		ScheduledAt: time.Now().Add(-time.Second), Shard: job.Shard{Total: 1}})
	require.NoError(t, err)
	return b
}

func TestAlerterIsCalledOnlyWhenTheRunEndsFailed(t *testing.T) {
	t.Parallel()
	l := &fakeLedger{}
	a := &recAlerter{}
	specs := map[string]job.Spec{"probe": job.Spec{MaxAttempts: 2}.WithDefaults()}
	p := NewProcessor(Config{Node: "n"}, l, fakeRegistry{err: errors.New("boom")}, specs, nil, nil,
		slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	p.SetAlerter(a)
	d := p.Process(context.Background(), Delivery{Body: body(t)})
	require.Equal(t, RetryLater, d.Action)
	require.Empty(t, a.calls, "a retried attempt does not alert")
	d = p.Process(context.Background(), Delivery{Body: body(t), ReconsumeTimes: 1})
	require.Equal(t, DeadLetter, d.Action)
	require.Equal(t, []int64{7}, a.calls)
	require.Equal(t, []ledger.Status{ledger.StatusRetrying, ledger.StatusFailed}, l.finished)

	// A discarded run fails at once and alerts; a panicking alerter changes nothing.
	l2 := &fakeLedger{}
	a2 := &recAlerter{panic: true}
	p2 := NewProcessor(Config{Node: "n"}, l2, fakeRegistry{err: job.Discard("bad data", errors.New("x"))}, specs, nil, nil,
		slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	p2.SetAlerter(a2)
	d = p2.Process(context.Background(), Delivery{Body: body(t)})
	require.Equal(t, DeadLetter, d.Action)
	require.Len(t, a2.calls, 1)

	// Success never alerts.
	p3 := NewProcessor(Config{Node: "n"}, &fakeLedger{}, fakeRegistry{}, specs, nil, nil,
		slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now)
	a3 := &recAlerter{}
	p3.SetAlerter(a3)
	require.Equal(t, Ack, p3.Process(context.Background(), Delivery{Body: body(t)}).Action)
	require.Empty(t, a3.calls)
}
