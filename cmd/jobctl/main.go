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

	"github.com/chatplat/job-service/internal/app"
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

// directOnly are the commands that need the database or broker themselves.
var directOnly = map[string]bool{"seed-demo": true, "gc-log": true, "file-event": true}

func rootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "jobctl",
		Short: "Operate job-service: force runs, follow them, list runs, jobs and nodes",
		Long: "Operate job-service: force runs, follow them, list runs, jobs and nodes.\n\n" +
			"Direct mode (default) reads the config (--config) and talks to Postgres and RocketMQ itself.\n" +
			"With --server URL (or $JOBCTL_SERVER) every command goes through that node's admin API instead,\n" +
			"with the token from $" + tokenEnv + ": no DSN or broker route needed.\n\n" + exitCodesHelp,
		Version:       app.Build().String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if g.server != "" && directOnly[cmd.Name()] {
				return usage(fmt.Errorf("%s works in direct mode only (it needs the database or broker itself): drop --server", cmd.Name()))
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&g.cfgPath, "config", "configs/local.yaml", "config file (the service's)")
	root.PersistentFlags().BoolVar(&g.json, "json", false, "print JSON")
	root.PersistentFlags().StringVar(&g.server, "server", os.Getenv("JOBCTL_SERVER"), "admin API base URL (https://node:8080); token from $"+tokenEnv)
	root.PersistentFlags().BoolVar(&g.insecure, "insecure", false, "with --server http:// to a host that is not loopback: send the token in clear anyway")
	root.PersistentFlags().StringVar(&g.caCert, "ca-cert", os.Getenv("JOBCTL_CA_CERT"), "with --server https://: PEM file of the CA that signed the node's certificate (default: the system's)")
	root.AddCommand(runCmd(g), runsCmd(g), jobsCmd(g), showCmd(g), pauseCmd(g, true), pauseCmd(g, false), backlogCmd(g), seedCmd(g))
	root.AddCommand(gcLogCmd(g), fileEventCmd(g), archiveCmd(g), nodesCmd(g), reportCmd(g))
	root.AddCommand(logsCmd(g), cancelCmd(g), retryCmd(g), backfillCmd(g))
	withUsageErrors(root)
	return root
}
