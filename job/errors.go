package job

import (
	"errors"
	"fmt"
	"time"
)

// RetryError asks the consumer to retry the run no sooner than After, if attempts remain.
type RetryError struct {
	After time.Duration
	Err   error
}

func (e *RetryError) Error() string { return fmt.Sprintf("retry after %s: %v", e.After, e.Err) }
func (e *RetryError) Unwrap() error { return e.Err }

// Retry wraps err so the consumer retries after at least the given delay.
func Retry(after time.Duration, err error) error { return &RetryError{After: after, Err: err} }

// DiscardError says that retrying cannot help: the run is recorded failed at once.
type DiscardError struct {
	Reason string
	Err    error
}

func (e *DiscardError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return fmt.Sprintf("%s: %v", e.Reason, e.Err)
}
func (e *DiscardError) Unwrap() error { return e.Err }

// Discard marks a failure that retrying cannot fix (bad data, a broken invariant).
func Discard(reason string, err error) error { return &DiscardError{Reason: reason, Err: err} }

// IsDiscard reports whether err asks for no retry.
func IsDiscard(err error) bool {
	var d *DiscardError
	return errors.As(err, &d)
}

// RetryAfter returns the delay a handler asked for, if it asked.
func RetryAfter(err error) (time.Duration, bool) {
	var r *RetryError
	if errors.As(err, &r) {
		return r.After, true
	}
	return 0, false
}
