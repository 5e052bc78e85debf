package job

import "errors"

// ProblemError names the problem behind a failure with a stable fingerprint, so that alerts
// about the same problem from consecutive runs and retries are sent once. Without one, alerts
// fingerprint the error text.
type ProblemError struct {
	Fingerprint string
	Err         error
}

func (e *ProblemError) Error() string { return e.Err.Error() }
func (e *ProblemError) Unwrap() error { return e.Err }

// WithProblem wraps err with the fingerprint of its problem (for example the set of
// sequence gaps found), which stays the same for as long as the problem does.
func WithProblem(fingerprint string, err error) error {
	return &ProblemError{Fingerprint: fingerprint, Err: err}
}

// ProblemOf returns the fingerprint a handler gave err, if any.
func ProblemOf(err error) (string, bool) {
	var p *ProblemError
	if errors.As(err, &p) && p.Fingerprint != "" {
		return p.Fingerprint, true
	}
	return "", false
}
