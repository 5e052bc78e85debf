package app

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/job"
)

// Serve runs one node until SIGTERM or SIGINT: start, serve the admin endpoints, then drain
// runs in flight within consumer.drain_timeout and stop. extra, when set, registers more
// handlers (the chaos tests' node binary). It returns nil after a clean shutdown, so the
// process exits 0.
func Serve(ctx context.Context, cfg *config.Config, extra func(n *Node, r *job.Registry), opts ...func(*Node)) error {
	log := NewLogger(cfg.Log, os.Stderr)
	for _, w := range cfg.Warnings {
		log.Warn("config: deprecated setting", "detail", w)
	}
	QuietRocketMQ()
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	node := &Node{Cfg: cfg, Log: log}
	for _, o := range opts {
		o(node)
	}
	if extra != nil {
		node.ExtraRegister = func(r *job.Registry) { extra(node, r) }
	}
	if err := node.Start(ctx); err != nil {
		return err
	}
	admin, err := StartAdmin(ctx, node)
	if err != nil {
		_ = node.Stop(context.Background())
		return err
	}
	log.Info("admin server listening", "addr", admin.Addr(), "console", admin.URL(), "metrics", admin.URL()+"metrics")
	<-ctx.Done()
	log.Info("shutting down: draining runs in flight", "drain_timeout", cfg.Consumer.DrainTimeout)
	// The drain deadline is the consumer's; this bound only guards against a wedged client.
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.Consumer.DrainTimeout+30*time.Second)
	defer cancel()
	// The admin server stays up through the drain: /readyz answers 503 (draining) so traffic
	// and probes move on, /metrics still shows the drain to the scraper.
	if err := node.Stop(stopCtx); err != nil {
		log.Error("shutdown", "err", err)
	}
	if err := admin.Stop(context.Background()); err != nil {
		log.Error("shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}
