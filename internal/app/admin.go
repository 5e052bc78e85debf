package app

import (
	"context"

	"github.com/chatplat/job-service/admin"
	"github.com/chatplat/job-service/archive"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ticker"
)

// NewAdmin builds the admin server (health, metrics, API, console) of a started node.
func NewAdmin(n *Node) *admin.Server {
	deps := admin.Deps{
		Node:      n.Cfg.Node,
		Ledger:    n.Ledger,
		Publisher: n.Producer,
		Kinds:     n.Registry.Kinds,
		Spec:      func(kind string) job.Spec { return n.Cfg.Spec(kind) },
		Ping:      n.Pool.Ping,
		InFlight:  n.Proc.InFlight,
		Draining:  n.Proc.Draining,
		Runs:      n.Ledger,
		Backfills: n.Ledger,
		Prepare: func(env job.Envelope) error {
			_, err := n.Registry.Prepare(env)
			return err
		},
		Archives: func(ctx context.Context, f archive.ListFilter) ([]*archive.Entry, error) {
			return archive.List(ctx, n.Pool, f)
		},
		Log:     n.Log.With("component", "admin"),
		Cluster: n.Ledger,
		// Nodes beat on the consumer's heartbeat, so they go stale on the same clock as runs.
		StaleAfter: n.Cfg.Consumer.WithDefaults().StaleAfter,
	}
	if n.Ticker != nil {
		deps.Ticker = func() ticker.State { return n.Ticker.State() }
	}
	if n.Metrics != nil {
		deps.Metrics, deps.Writes = n.Metrics.Handler(), n.Metrics
	}
	return admin.New(n.Cfg.Admin, deps)
}

// StartAdmin builds the admin server of a started node and listens on admin.listen.
func StartAdmin(ctx context.Context, n *Node) (*admin.Server, error) {
	s := NewAdmin(n)
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}
