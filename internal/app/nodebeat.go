package app

import (
	"context"
	"time"

	"github.com/chatplat/job-service/ledger"
)

// beatNode writes this node's row of job_nodes (jobctl nodes, the console's nodes page) now
// and then every consumer.heartbeat_interval until ctx ends; then it marks the node stopped.
// A failed write is logged and retried on the next beat: it must never stop the node.
func (n *Node) beatNode(ctx context.Context, started time.Time, now func() time.Time) {
	interval := n.Cfg.Consumer.WithDefaults().HeartbeatInterval
	beat := func() {
		b := ledger.NodeBeat{Node: n.Cfg.Node, Version: Build().Version, StartedAt: started}
		if n.Proc != nil {
			b.InFlight = n.Proc.InFlight()
		}
		if n.Ticker != nil {
			b.Leader = n.Ticker.State().Leader
		}
		b.Queues = append(n.Consumer.Queues(), n.ScheduleConsumer.Queues()...)
		if n.Metrics != nil {
			n.Metrics.SetInFlight(b.InFlight)
		}
		bctx, cancel := context.WithTimeout(ctx, interval)
		defer cancel()
		if err := n.Ledger.BeatNode(bctx, b, now()); err != nil && ctx.Err() == nil {
			n.Log.Warn("node heartbeat not recorded", "node", n.Cfg.Node, "err", err)
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		beat()
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := n.Ledger.StopNode(sctx, n.Cfg.Node, now()); err != nil {
				n.Log.Warn("node stop not recorded", "node", n.Cfg.Node, "err", err)
			}
			return
		case <-t.C:
		}
	}
}
