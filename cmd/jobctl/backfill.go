package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatplat/job-service/admin"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

func backfillCmd(g *globals) *cobra.Command {
	var from, to string
	var params []string
	var maxActive int
	var wait bool
	var waitTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "backfill JOB --from DATE --to DATE",
		Short: "Run a date-relative job once per period (day, ISO week) between two dates",
		Long: "Records one run per period from --from to --to (inclusive dates), each for its own period,\n" +
			"and publishes them, at most --max-active queued or running at once. The same backfill asked for again\n" +
			"(same job, dates and params) publishes only the periods without a run, or whose run failed or was\n" +
			"cancelled. With --wait it follows the runs until all have ended and exits 0 only if all succeeded.\n" +
			"`jobctl backfill cancel ID` cancels a backfill as a whole; `jobctl runs --backfill ID` lists its runs.",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := checkJob(args[0]); err != nil {
				return err
			}
			first, err := time.Parse(time.DateOnly, from)
			if err != nil {
				return usage(fmt.Errorf("--from %q: want a date (2026-11-01)", from))
			}
			last, err := time.Parse(time.DateOnly, to)
			if err != nil {
				return usage(fmt.Errorf("--to %q: want a date (2026-11-30)", to))
			}
			p, err := parseParams(params)
			if err != nil {
				return usage(err)
			}
			if g.server != "" {
				return remoteBackfill(ctx, cmd, g, args[0], admin.BackfillRequest{From: from, To: to, Params: p,
					MaxActive: maxActive, RequestedBy: requester()}, wait, waitTimeout)
			}
			cfg, l, pool, err := g.ledger(ctx)
			if err != nil {
				return err
			}
			defer pool.Close()
			if maxActive, err = job.BackfillConcurrency(cfg.Spec(args[0]), maxActive); err != nil {
				return usage(err)
			}
			b, err := l.OpenBackfill(ctx, ledger.BackfillRequest{Job: args[0], From: first, To: last, Params: p,
				MaxActive: maxActive, By: requester()})
			if err != nil {
				return usage(err)
			}
			prod, err := openProducer(ctx, cfg)
			if err != nil {
				return err
			}
			defer prod.Close() //nolint:errcheck // nothing to do about it on exit
			publish := func(ctx context.Context, env job.Envelope) (string, error) {
				return prod.Publish(ctx, env, time.Time{})
			}
			ctx, cancel := context.WithTimeout(ctx, waitTimeout)
			defer cancel()
			bar := newProgressBar(cmd.OutOrStdout(), g.json)
			prog, err := l.DriveBackfill(ctx, b, wait, time.Now, publish, bar.show)
			bar.done()
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), prog)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backfill %d of %s %s..%s: %d period(s), %d published now, %d succeeded, %d failed, %d active\n",
				b.ID, b.Job, from, to, prog.Total, prog.Published, prog.Succeeded, prog.Failed, prog.Active)
			if wait && prog.Succeeded != prog.Total {
				return &exitError{code: 2, err: fmt.Errorf("backfill %d: %d of %d period(s) did not succeed (see jobctl runs --backfill %d)",
					b.ID, prog.Total-prog.Succeeded, prog.Total, b.ID)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "first date (YYYY-MM-DD, in the job's time zone)")
	cmd.Flags().StringVar(&to, "to", "", "last date, inclusive")
	cmd.Flags().StringArrayVar(&params, "param", nil, "other run parameter key=value for every run (repeatable)")
	cmd.Flags().IntVar(&maxActive, "max-active", 0,
		"runs of the backfill queued or running at once (default 1 for a job whose overlap is skip_if_running, else 4)")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the runs until all have ended")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", time.Hour, "give up after this long (the runs go on)")
	_ = cmd.MarkFlagRequired("from")
	_ = cmd.MarkFlagRequired("to")
	cmd.AddCommand(backfillCancelCmd(g))
	return cmd
}

func backfillCancelCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a backfill as a whole: publish nothing more for it and cancel its unfinished runs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id < 1 {
				return usage(fmt.Errorf("backfill id %q: not a number", args[0]))
			}
			_, l, pool, err := g.ledger(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			n, err := l.CancelBackfill(cmd.Context(), id, requester())
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"backfill_id": id, "runs_cancelled": n})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backfill %d cancelled (%d unfinished run(s) cancelled)\n", id, n)
			return nil
		},
	}
}

// progressBar redraws one line on a terminal; elsewhere (a pipe, a log, --json) it is silent.
type progressBar struct {
	w     io.Writer
	on    bool
	drawn bool
}

func newProgressBar(w io.Writer, quiet bool) *progressBar {
	f, ok := w.(*os.File)
	on := false
	if ok && !quiet {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			on = true
		}
	}
	return &progressBar{w: w, on: on}
}

func (b *progressBar) show(p ledger.BackfillProgress) {
	if !b.on || p.Total == 0 {
		return
	}
	const width = 30
	filled := (p.Succeeded + p.Failed) * width / p.Total
	fmt.Fprintf(b.w, "\r[%s%s] %d/%d done (%d failed), %d active, %d waiting ",
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), p.Succeeded+p.Failed, p.Total, p.Failed,
		p.Active, p.Waiting)
	b.drawn = true
}

func (b *progressBar) done() {
	if b.drawn {
		fmt.Fprintln(b.w)
	}
}
