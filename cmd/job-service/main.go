// Command job-service runs one node: it competes for the ticker lease, consumes job messages
// and records every outcome in the Postgres ledger.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/internal/app"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "job-service:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	var cfgPath string
	root := &cobra.Command{
		Use:           "job-service",
		Short:         "Maintenance, consistency and report jobs of the chat platform, driven by RocketMQ",
		Version:       app.Build().String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), cfgPath)
		},
	}
	root.PersistentFlags().StringVar(&cfgPath, "config", "configs/local.yaml", "config file")
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the config file without starting anything",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(cfgPath, os.Getenv)
			if err != nil {
				return err
			}
			known := map[string]bool{}
			for _, k := range app.KnownKinds() {
				known[k] = true
			}
			if err := cfg.CheckJobsKnown(func(k string) bool { return known[k] }); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%d jobs)\n", cfgPath, len(cfg.Jobs))
			return nil
		},
	}
	cfgCmd := &cobra.Command{Use: "config", Short: "Config file commands"}
	cfgCmd.AddCommand(check)
	root.AddCommand(cfgCmd, probeCmd())
	return root
}

func run(ctx context.Context, cfgPath string) error {
	cfg, err := config.Load(cfgPath, os.Getenv)
	if err != nil {
		return err
	}
	return app.Serve(ctx, cfg, nil)
}
