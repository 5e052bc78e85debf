// Command testnode is job-service with the chaos test job kinds (chaos_probe, chaos_noop,
// chaos_tick_NN) added. The chaos tests and benchmarks build it and run it as real processes;
// the production binary (cmd/job-service) does not ship these kinds.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/chaos"
)

func main() {
	cfgPath := flag.String("config", "configs/local.yaml", "config file")
	flag.Parse()
	if err := run(*cfgPath); err != nil {
		fmt.Fprintln(os.Stderr, "testnode:", err)
		os.Exit(1)
	}
}

// run mirrors cmd/job-service's run: same start, same signal handling, same drain.
func run(cfgPath string) error {
	cfg, err := config.Load(cfgPath, os.Getenv)
	if err != nil {
		return err
	}
	log := app.NewLogger(cfg.Log, os.Stderr)
	app.QuietRocketMQ()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	node := &app.Node{Cfg: cfg, Log: log}
	node.ExtraRegister = func(r *handlers.Registry) { chaos.Register(r, cfg.Node, node.Pool, log) }
	if err := node.Start(ctx); err != nil {
		return err
	}
	admin, err := app.StartAdmin(ctx, node)
	if err != nil {
		_ = node.Stop(context.Background())
		return err
	}
	log.Info("admin server listening", "addr", admin.Addr())
	<-ctx.Done()
	log.Info("shutting down: draining runs in flight", "drain_timeout", cfg.Consumer.DrainTimeout)
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.Consumer.DrainTimeout+30*time.Second)
	defer cancel()
	admin.Close()
	if err := node.Stop(stopCtx); err != nil {
		log.Error("shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}
