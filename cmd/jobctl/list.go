package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/ledger"
)

func runsCmd(g *globals) *cobra.Command {
	var f ledger.RunFilter
	var status, since string
	cmd := &cobra.Command{
		Use:   "runs",
		Short: "List runs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if status != "" {
				f.Status = ledger.Status(status)
			}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				f.Since = t
			}
			if g.server != "" {
				return remoteRuns(cmd, g, f)
			}
			_, l, pool, err := g.ledger(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			runs, err := l.ListRuns(cmd.Context(), f)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), runs)
			}
			printRuns(cmd.OutOrStdout(), runs, false)
			return nil
		},
	}
	cmd.Flags().StringVar(&f.Job, "job", "", "only this job")
	cmd.Flags().StringVar(&status, "status", "", "only this status (scheduled, running, retrying, succeeded, failed, rejected, skipped, interrupted, abandoned, cancelled)")
	cmd.Flags().StringVar(&since, "since", "", "only runs created since: a duration (24h) or a date (2026-11-01)")
	cmd.Flags().IntVar(&f.Limit, "limit", 50, "at most this many")
	cmd.Flags().Int64Var(&f.Backfill, "backfill", 0, "only the runs of this backfill (jobctl backfill prints its id)")
	return cmd
}

// parseSince accepts a Go duration ("36h"), days ("7d") or an RFC 3339 time or date.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil {
			return now.AddDate(0, 0, -n), nil
		}
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (24h, 7d) or a date (2026-11-01)", s)
}

func printRuns(w io.Writer, runs []ledger.Run, withResult bool) {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tJOB\tRUN KEY\tSHARD\tSTATUS\tATTEMPT\tNODE\tSCHEDULED\tDURATION\tERROR")
	for _, r := range runs {
		dur := ""
		if d := r.Duration(); d > 0 {
			dur = d.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d\t%s\t%d\t%s\t%s\t%s\t%s\n", r.ID, r.Job, r.RunKey, r.ShardIndex, r.ShardTotal,
			r.Status, r.Attempt, r.Node, r.ScheduledAt.Local().Format(time.DateTime), dur, oneLine(r.Error, 80))
	}
	_ = tw.Flush()
	if withResult {
		for _, r := range runs {
			if len(r.Result) > 0 {
				fmt.Fprintf(w, "result of %d (shard %d): %s\n", r.ID, r.ShardIndex, r.Result)
			}
		}
	}
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

func jobsCmd(g *globals) *cobra.Command {
	var next int
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List jobs with schedule, next fire time and last outcome (--next N: the next N fire times, in each job's zone)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if next < 0 || next > 100 {
				return usage(fmt.Errorf("--next %d: want 0..100", next))
			}
			if g.server != "" {
				return remoteJobs(cmd, g, next)
			}
			cfg, l, pool, err := g.ledger(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			kinds := handlers.Kinds()
			sums, err := l.Summaries(cmd.Context(), kinds)
			if err == nil && next > 0 {
				fires := map[string][]time.Time{}
				for _, k := range kinds {
					if !sums[k].Paused {
						fires[k] = cfg.Spec(k).NextFires(time.Now(), next)
					}
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), fires)
				}
				printNextFires(cmd, fires, kinds)
				return nil
			}
			if err != nil {
				return err
			}
			type row struct {
				Job        string     `json:"job"`
				Schedule   string     `json:"schedule"`
				TimeZone   string     `json:"time_zone"`
				Enabled    bool       `json:"enabled"`
				Paused     bool       `json:"paused"`
				NextFire   *time.Time `json:"next_fire,omitempty"`
				LastStatus string     `json:"last_status,omitempty"`
				LastRunAt  *time.Time `json:"last_run_at,omitempty"`
				Running    int        `json:"running"`
				Failed24h  int        `json:"failed_24h"`
			}
			var rows []row
			for _, k := range kinds {
				spec := cfg.Spec(k)
				r := row{Job: k, Schedule: spec.Schedule, TimeZone: spec.TimeZone, Enabled: spec.IsEnabled(),
					Paused: sums[k].Paused, Running: sums[k].Running, Failed24h: sums[k].FailedLast}
				if next, ok := spec.NextFire(time.Now()); ok && !r.Paused {
					r.NextFire = &next
				}
				if lr := sums[k].LastRun; lr != nil {
					r.LastStatus = string(lr.Status)
					r.LastRunAt = &lr.CreatedAt
				}
				rows = append(rows, r)
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tSCHEDULE\tTZ\tSTATE\tNEXT FIRE\tLAST\tLAST RUN\tRUNNING\tFAILED 24H")
			for _, r := range rows {
				state := "enabled"
				switch {
				case r.Paused:
					state = "paused"
				case !r.Enabled:
					state = "manual-only"
				}
				next, last := "-", "-"
				if r.NextFire != nil {
					next = r.NextFire.Local().Format(time.DateTime)
				}
				if r.LastRunAt != nil {
					last = r.LastRunAt.Local().Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", r.Job, orDash(r.Schedule), r.TimeZone, state,
					next, orDash(r.LastStatus), last, r.Running, r.Failed24h)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().IntVar(&next, "next", 0, "instead of the table, the next N fire times of each job in its time zone")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func showCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show RUN_ID",
		Short: "Show one run with its attempts and result",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return usage(fmt.Errorf("run id %q: not a number", args[0]))
			}
			if g.server != "" {
				return remoteShow(cmd, g, id)
			}
			_, l, pool, err := g.ledger(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			r, err := l.GetRun(cmd.Context(), id)
			if err != nil {
				return err
			}
			attempts, err := l.Attempts(cmd.Context(), id)
			if err != nil {
				return err
			}
			ctl, err := l.Control(cmd.Context(), id)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"run": r, "attempts": attempts, "control": ctl})
			}
			printRunDetail(cmd.OutOrStdout(), r, attempts, &ctl)
			return nil
		},
	}
}

// printRunDetail is `jobctl show`, direct or through the API: the run, who asked to cancel or
// retry it and when, and its attempts. ctl is nil from a server without run control.
func printRunDetail(w io.Writer, r ledger.Run, attempts []ledger.Attempt, ctl *ledger.RunControl) {
	printRuns(w, []ledger.Run{r}, true)
	when := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Local().Format(time.DateTime)
	}
	if r.Trigger != "" {
		fmt.Fprintf(w, "trigger: %s by %s at %s\n", r.Trigger, orDash(r.RequestedBy), when(&r.CreatedAt))
	}
	if iv := r.Interval(); !iv.IsZero() {
		fmt.Fprintf(w, "stands for: %s\n", iv)
	} else {
		fmt.Fprintln(w, "stands for: not recorded (a run of an older node: its params and scheduled time say)")
	}
	if r.BackfillID != 0 {
		fmt.Fprintf(w, "backfill: %d (jobctl runs --backfill %d)\n", r.BackfillID, r.BackfillID)
	}
	if ctl != nil {
		if ctl.CancelRequestedBy != "" {
			fmt.Fprintf(w, "cancel: requested by %s at %s\n", ctl.CancelRequestedBy, when(ctl.CancelRequestedAt))
		}
		if ctl.RetryOf != 0 {
			// A retry is a run of its own: its requester and creation are the retry's.
			fmt.Fprintf(w, "retry of: run %d, requested by %s at %s\n", ctl.RetryOf, orDash(r.RequestedBy), when(&r.CreatedAt))
		}
		for _, rt := range ctl.Retries {
			fmt.Fprintf(w, "retried as: run %d (%s), requested by %s at %s\n", rt.ID, rt.Status, orDash(rt.RequestedBy),
				when(&rt.RequestedAt))
		}
	}
	fmt.Fprintln(w, "attempts:")
	for _, a := range attempts {
		fmt.Fprintf(w, "  #%d %s on %s at %s %s\n", a.Attempt, a.Outcome, a.Node,
			a.StartedAt.Local().Format(time.DateTime), oneLine(a.Error, 100))
	}
}

func pauseCmd(g *globals, pause bool) *cobra.Command {
	use, short := "resume JOB", "Let the ticker publish JOB again"
	if pause {
		use, short = "pause JOB", "Stop the ticker from publishing JOB (forced runs still work)"
	}
	return &cobra.Command{
		Use:               use,
		Short:             short,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// A typo would otherwise pause nothing and say it paused it.
			if err := checkJob(args[0]); err != nil {
				return err
			}
			if g.server != "" {
				return remotePause(cmd, g, args[0], pause)
			}
			_, l, pool, err := g.ledger(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			if pause {
				err = l.Pause(cmd.Context(), args[0], requester())
			} else {
				err = l.Resume(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"job": args[0], "paused": pause})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", args[0], map[bool]string{true: "paused", false: "resumed"}[pause])
			return nil
		},
	}
}

func backlogCmd(g *globals) *cobra.Command {
	var lag bool
	var script, brokerMetrics string
	cmd := &cobra.Command{
		Use:   "backlog",
		Short: "Runs due but not started, per job (from the ledger), and the RocketMQ lag of both consumer groups",
		Long: "Per job, runs scheduled and due but not started and runs waiting for a retry, from the ledger.\n" +
			"With --lag (default) also the RocketMQ lag of the job group and of the schedule group (fires):\n" +
			"from the broker's Prometheus exporter\n" +
			"(--broker-metrics, rocketmq_consumer_lag_messages) when it answers, else mqadmin consumerProgress\n" +
			"(--mqadmin; the local stack has deploy/local/mqadmin.sh). Where it cannot be read it says unavailable.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.server != "" {
				return remoteBacklog(cmd, g)
			}
			cfg, l, pool, err := g.ledger(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			b, err := l.Backlog(cmd.Context())
			if err != nil {
				return err
			}
			if b == nil {
				b = []ledger.BacklogEntry{}
			}
			if !lag {
				script = ""
			}
			lr := readLag(cmd.Context(), cfg, script, brokerMetrics)
			slr := readScheduleLag(cmd.Context(), cfg, script, brokerMetrics)
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"ledger": b, "rocketmq_lag": lr, "rocketmq_schedule_lag": slr})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tDUE\tRETRYING\tOLDEST DUE")
			for _, e := range b {
				oldest := "-"
				if e.OldestDue != nil {
					oldest = e.OldestDue.Local().Format(time.DateTime)
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", e.Job, e.Due, e.Retrying, oldest)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if lag {
				fmt.Fprintln(cmd.OutOrStdout(), lr.String())
				fmt.Fprintln(cmd.OutOrStdout(), slr.String())
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&lag, "lag", true, "also read the RocketMQ consumer-group lag (slow: starts mqadmin)")
	cmd.Flags().StringVar(&brokerMetrics, "broker-metrics", os.Getenv("JOBSVC_RMQ_METRICS"),
		"the broker's Prometheus exporter URL ($JOBSVC_RMQ_METRICS); read before falling back to mqadmin")
	cmd.Flags().StringVar(&script, "mqadmin", envOr("JOBSVC_MQADMIN", "deploy/local/mqadmin.sh"), "mqadmin wrapper script ($JOBSVC_MQADMIN)")
	return cmd
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
