package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatplat/job-service/admin"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/ledger"
)

// Exit codes, documented in jobctl --help.
const (
	exitFailed  = 1  // the command could not do what was asked (unreachable, refused, not found)
	exitRunBad  = 2  // run --wait: the run ended but not every shard succeeded
	exitTimeout = 3  // run --wait: still running after --wait-timeout
	exitUsage   = 64 // bad flags, arguments or job name: nothing was attempted
)

const exitCodesHelp = `Exit codes:
  0   done (run --wait: every shard succeeded)
  1   failed: a server unreachable, a request refused, a run not found
  2   run --wait: the run ended and not every shard succeeded
  3   run --wait: the run had not ended after --wait-timeout
  64  usage: bad flags or arguments, unknown job; nothing was attempted`

// usage marks err as a usage error (exit 64).
func usage(err error) error { return &exitError{code: exitUsage, err: err} }

// withUsageErrors makes every flag and argument error of cmd and its children exit 64.
func withUsageErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	if args := cmd.Args; args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error {
			if err := args(c, a); err != nil {
				return usage(err)
			}
			return nil
		}
	}
	for _, c := range cmd.Commands() {
		withUsageErrors(c)
	}
}

// checkJob refuses a job name this build does not know, before anything is sent.
func checkJob(name string) error {
	if !slices.Contains(handlers.Kinds(), name) {
		return usage(fmt.Errorf("unknown job %q (known: %s)", name, strings.Join(handlers.Kinds(), ", ")))
	}
	return nil
}

// completeJobs offers job names for shell completion (jobctl completion bash|zsh|fish).
func completeJobs(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return handlers.Kinds(), cobra.ShellCompDirectiveNoFileComp
}

func nodesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "List nodes: version, start, last heartbeat, runs in flight, ticker leader, queues; gone nodes marked",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var v admin.NodesView
			if g.server != "" {
				c, err := newAPIClient(g)
				if err != nil {
					return err
				}
				if err := c.do(ctx, "GET", "/api/nodes", nil, &v); err != nil {
					return err
				}
			} else {
				cfg, l, pool, err := g.ledger(ctx)
				if err != nil {
					return err
				}
				defer pool.Close()
				v.StaleAfter = cfg.Consumer.WithDefaults().StaleAfter
				if v.Nodes, err = l.Nodes(ctx, time.Now(), v.StaleAfter, 24*time.Hour); err != nil {
					return err
				}
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), v)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tSTATE\tVERSION\tSTARTED\tLAST HEARTBEAT\tIN FLIGHT\tTICKER\tQUEUES")
			for _, n := range v.Nodes {
				leader := "-"
				if n.Leader {
					leader = "leader"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s ago\t%d\t%s\t%s\n", n.Node, n.State, orDash(n.Version),
					n.StartedAt.Local().Format(time.DateTime), time.Since(n.HeartbeatAt).Round(time.Second),
					n.InFlight, leader, orDash(strings.Join(n.Queues, " ")))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "a node without a heartbeat for %s (consumer.stale_after) is gone\n", v.StaleAfter)
			return nil
		},
	}
}

func reportCmd(g *globals) *cobra.Command {
	var jobName string
	var days int
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Runs per day over the last days: succeeded, failed, other (all jobs or --job)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if jobName != "" {
				if err := checkJob(jobName); err != nil {
					return err
				}
			}
			if days < 1 || days > 366 {
				return usage(fmt.Errorf("--days %d: want 1..366", days))
			}
			var rows []ledger.ReportDay
			if g.server != "" {
				c, err := newAPIClient(g)
				if err != nil {
					return err
				}
				q := url.Values{"days": {strconv.Itoa(days)}}
				if jobName != "" {
					q.Set("job", jobName)
				}
				var rep admin.Report
				if err := c.do(ctx, "GET", "/api/report?"+q.Encode(), nil, &rep); err != nil {
					return err
				}
				rows = rep.Total
				if jobName != "" {
					rows = rep.Jobs[jobName]
				}
			} else {
				_, l, pool, err := g.ledger(ctx)
				if err != nil {
					return err
				}
				defer pool.Close()
				now := time.Now()
				raw, err := l.RunReport(ctx, now, days, time.UTC)
				if err != nil {
					return err
				}
				rows = ledger.Totals(raw, ledger.ReportDays(now, days, time.UTC), jobName)
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "DAY (UTC)\tSUCCEEDED\tFAILED\tOTHER")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", r.Day, r.Succeeded, r.Failed, r.Other)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&jobName, "job", "", "only this job")
	cmd.Flags().IntVar(&days, "days", 30, "days back, today included")
	_ = cmd.RegisterFlagCompletionFunc("job", completeJobs)
	return cmd
}

// printNextFires lists each job's next fire times, in its zone.
func printNextFires(cmd *cobra.Command, jobs map[string][]time.Time, order []string) {
	for _, j := range order {
		fmt.Fprintf(cmd.OutOrStdout(), "%s:", j)
		if len(jobs[j]) == 0 {
			fmt.Fprint(cmd.OutOrStdout(), " -")
		}
		for _, t := range jobs[j] {
			fmt.Fprintf(cmd.OutOrStdout(), "\n  %s", t.Format("2006-01-02 15:04:05 MST (Mon)"))
		}
		fmt.Fprintln(cmd.OutOrStdout())
	}
}

// serverNextFires reads n next fire times of each job through the API.
func serverNextFires(ctx context.Context, c *apiClient, jobs []string, n int) (map[string][]time.Time, error) {
	out := map[string][]time.Time{}
	for _, j := range jobs {
		var nf admin.NextFires
		if err := c.do(ctx, "GET", "/api/jobs/"+url.PathEscape(j)+"/next?n="+strconv.Itoa(n), nil, &nf); err != nil {
			return nil, err
		}
		if nf.Paused {
			continue
		}
		// JSON keeps the offset, not the zone's name; put it back for the reader.
		if loc, err := time.LoadLocation(nf.TimeZone); err == nil {
			for i := range nf.Next {
				nf.Next[i] = nf.Next[i].In(loc)
			}
		}
		out[j] = nf.Next
	}
	return out, nil
}
