// Command job-service runs one node: it competes for the ticker lease, consumes job messages
// and records every outcome in the Postgres ledger.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	_ "time/tzdata" // time_zone must load on an image without a zoneinfo database

	"github.com/spf13/cobra"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/handlers"
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
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return checkConfig(cmd.Context(), cmd.OutOrStdout(), cfgPath)
		},
	}
	cfgCmd := &cobra.Command{Use: "config", Short: "Config file commands", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return errNoSubcommand(cmd) }}
	reference := &cobra.Command{
		Use:   "reference",
		Short: "Print every config key with its type, default and meaning (docs/configuration.md)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return config.WriteReference(cmd.OutOrStdout(), handlers.Definitions())
		},
	}
	cfgCmd.AddCommand(check, reference)
	root.AddCommand(cfgCmd, probeCmd())
	return root
}

func run(ctx context.Context, cfgPath string) error {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	return app.Serve(ctx, cfg, nil)
}

// checkConfig loads the file as a node would, judges every scheduled job against the table of
// handlers (its kind exists, its params decode and validate by the job's own rules), and
// prints every problem found, one per line, not just the first. Then it says what
// partition_archive will archive and drop, with sizes when Postgres is reachable.
func checkConfig(ctx context.Context, w io.Writer, cfgPath string) error {
	cfg, err := loadConfig(cfgPath)
	if err == nil {
		known := map[string]bool{}
		for _, k := range handlers.Kinds() {
			known[k] = true
		}
		err = cfg.CheckJobsKnown(func(k string) bool { return known[k] })
	}
	if err != nil {
		return fmt.Errorf("%s:\n%w", cfgPath, err)
	}
	for _, warning := range cfg.Warnings {
		fmt.Fprintf(w, "%s: warning: %s\n", cfgPath, warning)
	}
	fmt.Fprintf(w, "%s: ok (%d jobs scheduled: %s; time_zone %s)\n", cfgPath, len(cfg.Scheduled()),
		strings.Join(cfg.Scheduled(), ", "), cfg.TimeZone)
	printArchivePlan(ctx, w, *cfg)
	return nil
}

// loadConfig loads the file under the process's environment and warns, besides what Load
// warns about, of each JOBSERVICE_ variable that sets no key (a misspelt name).
func loadConfig(cfgPath string) (*config.Config, error) {
	cfg, err := app.LoadConfig(cfgPath, os.Getenv)
	if err != nil {
		return nil, err
	}
	cfg.Warnings = append(cfg.Warnings, config.UnknownVariables(os.Environ(), handlers.Definitions())...)
	return cfg, nil
}

// errNoSubcommand makes a command that only groups others fail when called bare or with an
// unknown subcommand, instead of printing help and exiting 0.
func errNoSubcommand(cmd *cobra.Command) error {
	return fmt.Errorf("%s: want a subcommand (%s)", cmd.CommandPath(), strings.Join(subcommands(cmd), ", "))
}

func subcommands(cmd *cobra.Command) []string {
	var out []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			out = append(out, c.Name())
		}
	}
	return out
}
