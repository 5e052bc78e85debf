package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

func parseRunID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, fmt.Errorf("run id %q: want a number (jobctl runs lists them)", s)
	}
	return id, nil
}

func printLogLine(w io.Writer, ln ledger.LogLine) {
	attrs := ""
	if ln.Attrs != "" {
		attrs = " " + ln.Attrs
	}
	fmt.Fprintf(w, "%s %-5s #%d %s%s\n", ln.At.UTC().Format("2006-01-02T15:04:05.000Z"), ln.Level, ln.Attempt, ln.Msg, attrs)
}

func logsCmd(g *globals) *cobra.Command {
	var follow bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "logs RUN",
		Short: "Print what a run's handler logged (its last 2,000 lines / 1 MiB)",
		Long: "Prints the log lines kept with the run, oldest first. Nodes write them at each heartbeat and when an\n" +
			"attempt ends. With --follow it keeps printing new lines until the run finishes.\n" +
			"--json prints one JSON object per line.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if g.server != "" {
				return remoteLogs(cmd, g, id, follow, interval)
			}
			_, l, pool, err := g.ledger(ctx)
			if err != nil {
				return err
			}
			defer pool.Close()
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			var after int64
			warned := map[int]bool{}
			for {
				// The status before the lines: an attempt writes its lines before its outcome.
				run, err := l.GetRun(ctx, id)
				if err != nil {
					return err
				}
				page, err := l.RunLogs(ctx, id, after, 0)
				if err != nil {
					return err
				}
				for _, d := range page.Dropped {
					if !g.json && !warned[d.Attempt] {
						warned[d.Attempt] = true
						fmt.Fprintf(out, "… attempt %d: first %d lines dropped (bound reached)\n", d.Attempt, d.Lines)
					}
				}
				stored := 0 // built lines (id 0) do not count toward the page's 5000
				for _, ln := range page.Lines {
					if ln.ID != 0 {
						stored++
					}
					if g.json {
						if err := enc.Encode(ln); err != nil {
							return err
						}
						continue
					}
					printLogLine(out, ln)
				}
				after = page.Next
				if stored == 5000 {
					continue // more waiting
				}
				// The status read with the lines (see ledger.RunLogPage.RunStatus).
				if page.RunStatus != "" {
					run.Status = page.RunStatus
				}
				if !follow || run.Status.Terminal() {
					if follow && !g.json {
						fmt.Fprintf(out, "run %d %s\n", id, run.Status)
					}
					return nil
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(interval):
				}
			}
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until the run finishes")
	cmd.Flags().DurationVar(&interval, "interval", time.Second, "with --follow, how often to look for new lines")
	return cmd
}

// runControl is what cancel and retry share: one run id argument, done through the admin API
// with --server, else on the ledger directly (direct gets it open).
func runControl(g *globals, action string,
	direct func(cmd *cobra.Command, cfg *config.Config, l *ledger.Ledger, id int64) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		id, err := parseRunID(args[0])
		if err != nil {
			return err
		}
		if g.server != "" {
			return remoteControl(cmd, g, id, action)
		}
		cfg, l, pool, err := g.ledger(cmd.Context())
		if err != nil {
			return err
		}
		defer pool.Close()
		return direct(cmd, cfg, l, id)
	}
}

func cancelCmd(g *globals) *cobra.Command {
	var wait bool
	var waitTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "cancel RUN",
		Short: "Cancel a run: stop it if running (within one heartbeat), or keep it from starting",
		Long: "A run not running now (scheduled, retrying, interrupted, abandoned) ends cancelled at once. A running\n" +
			"run is stopped by the node running it, whichever node that is, at its next heartbeat: the handler's\n" +
			"context is cancelled and the run ends cancelled, without retry. With --wait, waits for that.",
		Args: cobra.ExactArgs(1),
		RunE: runControl(g, "cancel", func(cmd *cobra.Command, _ *config.Config, l *ledger.Ledger, id int64) error {
			ctx := cmd.Context()
			st, err := l.RequestCancel(ctx, id, requester())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if st == ledger.StatusRunning && wait {
				ctx, cancel := context.WithTimeout(ctx, waitTimeout)
				defer cancel()
				for !st.Terminal() {
					select {
					case <-ctx.Done():
						return &exitError{code: 3, err: fmt.Errorf("run %d still %s after %s", id, st, waitTimeout)}
					case <-time.After(250 * time.Millisecond):
					}
					run, err := l.GetRun(ctx, id)
					if err != nil {
						return err
					}
					st = run.Status
				}
			}
			if g.json {
				return printJSON(out, map[string]any{"run_id": id, "status": st, "pending": st == ledger.StatusRunning})
			}
			switch st {
			case ledger.StatusRunning:
				fmt.Fprintf(out, "cancel requested for run %d: the node running it stops it at its next heartbeat\n", id)
			case ledger.StatusCancelled:
				fmt.Fprintf(out, "run %d cancelled\n", id)
			default:
				fmt.Fprintf(out, "run %d ended %s before the cancel reached it\n", id, st)
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the run has ended")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", time.Minute, "give up waiting after this long")
	return cmd
}

func retryCmd(g *globals) *cobra.Command {
	var wait bool
	var waitTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "retry RUN",
		Short: "Retry a failed or cancelled run as a new run linked to it",
		Long: "Publishes a new run of the same job, shard and params (run key retry:<id>@<ms>), with a fresh\n" +
			"attempt budget; the new run's retry_of names the original and requested_by says who asked.\n" +
			"With --wait it follows the new run like run --wait.",
		Args: cobra.ExactArgs(1),
		RunE: runControl(g, "retry", func(cmd *cobra.Command, cfg *config.Config, l *ledger.Ledger, id int64) error {
			ctx := cmd.Context()
			orig, err := l.GetRun(ctx, id)
			if err != nil {
				return err
			}
			if orig.Status != ledger.StatusFailed && orig.Status != ledger.StatusCancelled {
				return fmt.Errorf("run %d is %s: %w", id, orig.Status, ledger.ErrNotRetryable)
			}
			prod, err := openProducer(ctx, cfg)
			if err != nil {
				return err
			}
			defer prod.Close() //nolint:errcheck // nothing to do about it on exit
			publish := func(ctx context.Context, env job.Envelope) (string, error) {
				return prod.Publish(ctx, env, time.Time{})
			}
			run, _, err := l.Retry(ctx, id, requester(), ledger.RetryKey(id, time.Now()), publish)
			if err != nil {
				return err
			}
			if wait {
				return waitForRun(ctx, g, cmd, run.Job, run.RunKey, waitTimeout)
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"run_id": id, "retry_run_id": run.ID, "run_key": run.RunKey})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "run %d retried as run %d (%s %s)\n", id, run.ID, run.Job, run.RunKey)
			return nil
		}),
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the new run until it ends")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", 15*time.Minute, "give up waiting after this long")
	return cmd
}
