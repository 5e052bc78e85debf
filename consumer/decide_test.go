package consumer

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// decide: every way an attempt can end, and what the ledger and the broker are told.
func TestDecide(t *testing.T) {
	t.Parallel()
	b := backoff{first: time.Second, max: 10 * time.Second}
	const stale = 30 * time.Second
	boom := errors.New("boom")
	byAlice := &ledger.CancelledError{By: "alice"}
	for _, c := range []struct {
		name                string
		runErr, cause       error
		attempt, maxAttempt int
		want                verdict
	}{
		{name: "succeeded", attempt: 1, maxAttempt: 3,
			want: verdict{status: ledger.StatusSucceeded, decision: Decision{Action: Ack}}},
		{name: "succeeded although something asked it to stop", cause: errDraining, attempt: 1, maxAttempt: 3,
			want: verdict{status: ledger.StatusSucceeded, decision: Decision{Action: Ack}}},
		{name: "cancelled by an operator", runErr: fmt.Errorf("handler: %w", boom), cause: byAlice, attempt: 1, maxAttempt: 3,
			want: verdict{status: ledger.StatusCancelled, decision: Decision{Action: Ack, Reason: "cancelled by alice"}, err: byAlice}},
		{name: "cancelled on its last attempt: still no retry, no dead letter", runErr: boom, cause: fmt.Errorf("stop: %w", byAlice),
			attempt: 3, maxAttempt: 3,
			want: verdict{status: ledger.StatusCancelled, decision: Decision{Action: Ack, Reason: "cancelled by alice"}, err: byAlice}},
		{name: "taken over by another node: nothing recorded", runErr: boom, cause: ledger.ErrLostClaim, attempt: 1, maxAttempt: 3,
			want: verdict{decision: Decision{Action: Ack, Reason: "taken over"}, err: boom}},
		{name: "interrupted by shutdown", runErr: boom, cause: errDraining, attempt: 3, maxAttempt: 3,
			want: verdict{status: ledger.StatusInterrupted, err: boom,
				decision: Decision{Action: RetryLater, After: time.Second, Reason: "interrupted by shutdown"}}},
		{name: "stopped: the ledger is unreachable", runErr: boom, cause: ErrLedgerUnreachable, attempt: 1, maxAttempt: 3,
			want: verdict{status: ledger.StatusInterrupted, err: boom,
				decision: Decision{Action: RetryLater, After: stale, Reason: ErrLedgerUnreachable.Error()}}},
		{name: "discarded by the handler", runErr: job.Discard("bad input", boom), attempt: 1, maxAttempt: 3,
			want: verdict{status: ledger.StatusFailed, err: job.Discard("bad input", boom),
				decision: Decision{Action: DeadLetter, Reason: job.Discard("bad input", boom).Error()}}},
		{name: "failed on its last attempt", runErr: boom, attempt: 3, maxAttempt: 3,
			want: verdict{status: ledger.StatusFailed, err: boom, decision: Decision{Action: DeadLetter, Reason: "boom"}}},
		{name: "retried after the backoff", runErr: boom, attempt: 2, maxAttempt: 3,
			want: verdict{status: ledger.StatusRetrying, err: boom, decision: Decision{Action: RetryLater, After: 2 * time.Second, Reason: "boom"}}},
		{name: "the backoff is capped", runErr: boom, attempt: 9, maxAttempt: 10,
			want: verdict{status: ledger.StatusRetrying, err: boom, decision: Decision{Action: RetryLater, After: 10 * time.Second, Reason: "boom"}}},
		{name: "the handler asks for a longer wait", runErr: job.Retry(time.Minute, boom), attempt: 1, maxAttempt: 3,
			want: verdict{status: ledger.StatusRetrying, err: job.Retry(time.Minute, boom),
				decision: Decision{Action: RetryLater, After: time.Minute, Reason: job.Retry(time.Minute, boom).Error()}}},
		{name: "a shorter wait asked for keeps the backoff", runErr: job.Retry(time.Millisecond, boom), attempt: 1, maxAttempt: 3,
			want: verdict{status: ledger.StatusRetrying, err: job.Retry(time.Millisecond, boom),
				decision: Decision{Action: RetryLater, After: time.Second, Reason: job.Retry(time.Millisecond, boom).Error()}}},
		{name: "a context error without a cause is a failure like any", runErr: fmt.Errorf("not started: %w", errors.New("x")),
			attempt: 1, maxAttempt: 1,
			want: verdict{status: ledger.StatusFailed, err: fmt.Errorf("not started: %w", errors.New("x")),
				decision: Decision{Action: DeadLetter, Reason: "not started: x"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := decide(c.runErr, c.cause, c.attempt, c.maxAttempt, b, stale)
			require.Equal(t, c.want.status, got.status)
			require.Equal(t, c.want.decision, got.decision)
			require.Equal(t, fmt.Sprint(c.want.err), fmt.Sprint(got.err))
			require.False(t, got.recorded, "decide only decides; the ledger's answer comes after")
		})
	}
}

// decideRecorded: what the ledger's answer to the finish makes of a verdict.
func TestDecideRecorded(t *testing.T) {
	t.Parallel()
	const stale = 30 * time.Second
	boom := errors.New("boom")
	retrying := verdict{status: ledger.StatusRetrying, err: boom, decision: Decision{Action: RetryLater, After: time.Second, Reason: "boom"}}
	for _, c := range []struct {
		name      string
		finishErr error
		want      verdict
	}{
		{name: "recorded", want: verdict{status: ledger.StatusRetrying, err: boom, recorded: true,
			decision: Decision{Action: RetryLater, After: time.Second, Reason: "boom"}}},
		{name: "a cancel request came first: recorded cancelled", finishErr: fmt.Errorf("finish: %w", ledger.ErrRecordedCancelled),
			want: verdict{status: ledger.StatusCancelled, err: boom, recorded: true, decision: Decision{Action: Ack, Reason: "cancelled"}}},
		{name: "taken over while it ran: dropped", finishErr: fmt.Errorf("finish: %w", ledger.ErrLostClaim),
			want: verdict{err: boom, decision: Decision{Action: Ack, Reason: "taken over"}}},
		{name: "not recorded: the message comes back once the run is stale", finishErr: errors.New("connection refused"),
			want: verdict{status: ledger.StatusRetrying, err: boom,
				decision: Decision{Action: RetryLater, After: stale, Reason: "connection refused"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, c.want, decideRecorded(retrying, c.finishErr, stale))
		})
	}
}

// The retry backoff doubles per attempt from retry_backoff up to retry_backoff_max.
func TestBackoff(t *testing.T) {
	t.Parallel()
	b := backoff{first: 5 * time.Second, max: time.Minute}
	for attempt, want := range map[int]time.Duration{0: 5 * time.Second, 1: 5 * time.Second, 2: 10 * time.Second,
		3: 20 * time.Second, 4: 40 * time.Second, 5: time.Minute, 50: time.Minute} {
		require.Equal(t, want, b.after(attempt), "attempt %d", attempt)
	}
}
