// Command testnode is job-service with the chaos test job kinds (chaos_probe, chaos_noop,
// chaos_tick_NN) added. The chaos tests and benchmarks build it and run it as real processes;
// the production binary (cmd/job-service) does not ship these kinds.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/job"
)

func main() {
	cfgPath := flag.String("config", "configs/local.yaml", "config file")
	flag.Parse()
	if err := run(*cfgPath); err != nil {
		fmt.Fprintln(os.Stderr, "testnode:", err)
		os.Exit(1)
	}
}

// run is cmd/job-service's run with the chaos kinds registered.
func run(cfgPath string) error {
	cfg, err := app.LoadConfig(cfgPath, os.Getenv)
	if err != nil {
		return err
	}
	return app.Serve(context.Background(), cfg, func(n *app.Node, r *job.Registry) {
		chaos.Register(r, cfg.Node, n.Pool, n.Log)
	})
}
