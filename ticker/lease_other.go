//go:build !linux

package ticker

import (
	"syscall"
	"time"
)

// userTimeout is Linux-only; elsewhere keepalives and the session timeout bound the lease.
func userTimeout(time.Duration) func(network, address string, c syscall.RawConn) error { return nil }
