// Command jobctl is the operator's CLI: force a run through RocketMQ, follow it in the ledger,
// list runs and jobs, pause and resume schedules.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := rootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "jobctl:", err)
		os.Exit(exitCode(err))
	}
}

func rootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "jobctl",
		Short:         "Operate job-service: force runs, follow them, list runs and jobs",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.cfgPath, "config", "configs/local.yaml", "config file (the service's)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print JSON")
	root.AddCommand(runCmd(g), runsCmd(g), jobsCmd(g), showCmd(g), pauseCmd(g, true), pauseCmd(g, false), backlogCmd(g), seedCmd(g))
	root.AddCommand(gcLogCmd(g), fileEventCmd(g), archiveCmd(g))
	root.AddCommand(logsCmd(g), cancelCmd(g), retryCmd(g))
	return root
}
