package consumer

import (
	"errors"
	"time"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// backoff is the retry policy: first after the first attempt, doubling per attempt up to max.
type backoff struct{ first, max time.Duration }

func (b backoff) after(attempt int) time.Duration {
	d := b.first
	for i := 1; i < attempt && d < b.max; i++ {
		d *= 2
	}
	return min(d, b.max)
}

// verdict is what becomes of one attempt: the status to record (none when the run is no
// longer this node's), the broker's decision, and the error recorded with the outcome.
type verdict struct {
	status   ledger.Status
	decision Decision
	err      error
	// recorded is set by decideRecorded: the ledger holds status.
	recorded bool
}

// decide turns an attempt's end into its outcome. runErr is the handler's return (or why it
// never started), cause the run context's cancel cause (nil unless something stopped it).
// It is pure: everything it needs is an argument.
func decide(runErr, cause error, attempt, maxAttempts int, b backoff, staleAfter time.Duration) verdict {
	var cancelled *ledger.CancelledError
	switch {
	case runErr == nil:
		return verdict{status: ledger.StatusSucceeded, decision: Decision{Action: Ack}}
	case errors.As(cause, &cancelled):
		// An operator asked: the run ends here, no retry.
		return verdict{status: ledger.StatusCancelled, decision: Decision{Action: Ack, Reason: cancelled.Error()}, err: cancelled}
	case errors.Is(cause, ledger.ErrLostClaim):
		// Another node holds the run now: its outcome is that node's to record.
		return verdict{decision: Decision{Action: Ack, Reason: "taken over"}, err: runErr}
	case errors.Is(cause, errDraining):
		return verdict{status: ledger.StatusInterrupted, err: runErr,
			decision: Decision{Action: RetryLater, After: time.Second, Reason: "interrupted by shutdown"}}
	case errors.Is(cause, ErrLedgerUnreachable):
		return verdict{status: ledger.StatusInterrupted, err: runErr,
			decision: Decision{Action: RetryLater, After: staleAfter, Reason: cause.Error()}}
	case job.IsDiscard(runErr) || attempt >= maxAttempts:
		return verdict{status: ledger.StatusFailed, decision: Decision{Action: DeadLetter, Reason: runErr.Error()}, err: runErr}
	}
	after := b.after(attempt)
	if asked, ok := job.RetryAfter(runErr); ok {
		after = max(after, asked)
	}
	return verdict{status: ledger.StatusRetrying, decision: Decision{Action: RetryLater, After: after, Reason: runErr.Error()}, err: runErr}
}

// decideRecorded is v once the ledger answered its finish with finishErr.
func decideRecorded(v verdict, finishErr error, staleAfter time.Duration) verdict {
	switch {
	case finishErr == nil:
		v.recorded = true
	case errors.Is(finishErr, ledger.ErrRecordedCancelled):
		// Cancelled while it ran, ended before its heartbeat brought the request: the run is over.
		v = verdict{status: ledger.StatusCancelled, decision: Decision{Action: Ack, Reason: "cancelled"}, err: v.err, recorded: true}
	case errors.Is(finishErr, ledger.ErrLostClaim):
		v = verdict{decision: Decision{Action: Ack, Reason: "taken over"}, err: v.err}
	default:
		// Not recorded: the message comes back, and the run is taken over once stale.
		v.decision = Decision{Action: RetryLater, After: staleAfter, Reason: finishErr.Error()}
	}
	return v
}
