// Command testnode is job-service with the chaos test job kinds (chaos_probe, chaos_noop,
// chaos_tick_NN) added. The chaos tests and benchmarks build it and run it as real processes;
// the production binary (cmd/job-service) does not ship these kinds.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

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
	// Benchmarks profile the node: JOBSVC_TEST_CPUPROFILE=path writes a CPU profile of the
	// process in windows (see profileCPU); the benchmarks end nodes with kill -9, so a
	// profile cannot wait for the exit.
	if path := os.Getenv("JOBSVC_TEST_CPUPROFILE"); path != "" {
		if err := profileCPU(path, os.Getenv("JOBSVC_TEST_CPUPROFILE_FOR")); err != nil {
			return err
		}
	}
	var opts []func(*app.Node)
	// The clock-skew fault: this node's own clock reads JOBSVC_TEST_CLOCK_SKEW ahead (e.g. 5m).
	if v := os.Getenv("JOBSVC_TEST_CLOCK_SKEW"); v != "" {
		skew, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("JOBSVC_TEST_CLOCK_SKEW: %w", err)
		}
		opts = append(opts, func(n *app.Node) { n.LocalClock = func() time.Time { return time.Now().Add(skew) } })
	}
	return app.Serve(context.Background(), cfg, func(n *app.Node, r *job.Registry) {
		chaos.Register(r, cfg.Node, n.Pool, n.Log)
	}, opts...)
}

// profileCPU writes CPU profiles in windows of forText (default 1m) to path.1, path.2, ...
// until the process ends; a window cut short by kill -9 is lost.
func profileCPU(path, forText string) error {
	dur := time.Minute
	if forText != "" {
		d, err := time.ParseDuration(forText)
		if err != nil {
			return fmt.Errorf("JOBSVC_TEST_CPUPROFILE_FOR: %w", err)
		}
		dur = d
	}
	start := func(n int) (*os.File, error) {
		f, err := os.Create(fmt.Sprintf("%s.%d", path, n))
		if err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		return f, nil
	}
	f, err := start(1)
	if err != nil {
		return err
	}
	go func() {
		for n := 2; ; n++ {
			time.Sleep(dur)
			pprof.StopCPUProfile()
			f.Close()
			if f, err = start(n); err != nil {
				fmt.Fprintln(os.Stderr, "testnode:", err)
				return
			}
		}
	}()
	return nil
}
