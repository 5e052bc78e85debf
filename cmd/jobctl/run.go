package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatplat/job-service/admin"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

func runCmd(g *globals) *cobra.Command {
	var params []string
	var shards int
	var wait bool
	var waitTimeout time.Duration
	cmd := &cobra.Command{
		Use:   "run JOB",
		Short: "Force a run: record it, then publish a manual message on the job topic",
		Long: "Records the run in the ledger (with the interval it stands for: a date-relative job's period of now,\n" +
			"or the one --param date=/week= names), then publishes the same envelope any RocketMQ producer could,\n" +
			"with trigger=manual and a fresh run key.\n" +
			"With --wait it follows the ledger until every shard ends and exits 0 only if all succeeded.",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := checkJob(args[0]); err != nil {
				return err
			}
			p, err := parseParams(params)
			if err != nil {
				return usage(err)
			}
			if g.server != "" {
				return remoteRun(ctx, cmd, g, admin.ForceRequest{Params: p, Shards: shards, RequestedBy: requester()},
					args[0], wait, waitTimeout)
			}
			cfg, err := g.config()
			if err != nil {
				return err
			}
			if shards == 0 {
				shards = cfg.Spec(args[0]).Shards
			}
			mr, err := job.NewManualRun(args[0], p, shards, requester(), time.Now(), nil)
			if err != nil {
				return err
			}
			prod, err := openProducer(ctx, cfg)
			if err != nil {
				return err
			}
			defer prod.Close() //nolint:errcheck // nothing to do about it on exit
			l, pool, err := openLedger(ctx, cfg)
			if err != nil {
				return err
			}
			defer pool.Close()
			runKey := mr.RunKey
			publish := func(ctx context.Context, env job.Envelope) (string, error) {
				return prod.Publish(ctx, env, time.Time{})
			}
			// Recorded before published: a message that never reaches a node leaves its run.
			runs, err := l.Submit(ctx, mr.Envelopes, publish)
			if errors.Is(err, ledger.ErrRecordedNotPublished) {
				return fmt.Errorf("publish via name servers %v: %w (is topic %s created and its broker up?)",
					cfg.RocketMQ.NameServers, err, cfg.RocketMQ.Topic)
			}
			if err != nil {
				return err
			}
			ids := make([]int64, len(runs))
			for i, r := range runs {
				ids[i] = r.ID
			}
			if !wait {
				if g.json {
					return printJSON(cmd.OutOrStdout(), map[string]any{"job": args[0], "run_key": runKey, "shards": shards,
						"run_ids": ids, "interval": runs[0].Interval()})
				}
				fmt.Fprintf(cmd.OutOrStdout(), "published %s run %s (%d shard(s), run ids %v) for %s\n", args[0], runKey,
					shards, ids, runs[0].Interval())
				return nil
			}
			return waitForRun(ctx, g, cmd, args[0], runKey, waitTimeout)
		},
	}
	cmd.Flags().StringArrayVar(&params, "param", nil, "run parameter key=value (repeatable)")
	cmd.Flags().IntVar(&shards, "shards", 0, "number of shard messages (default: the job's configured shards)")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the run in the ledger until it ends")
	cmd.Flags().DurationVar(&waitTimeout, "wait-timeout", 15*time.Minute, "give up waiting after this long")
	return cmd
}

func requester() string {
	who := "jobctl"
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	host, _ := os.Hostname()
	return who + "@" + host
}

func waitForRun(ctx context.Context, g *globals, cmd *cobra.Command, jobName, runKey string, timeout time.Duration) error {
	_, l, pool, err := g.ledger(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		grp, err := l.RunGroupByKey(ctx, jobName, runKey)
		if err != nil {
			return err
		}
		rejected, err := l.RejectionsOf(ctx, jobName, runKey)
		if err != nil {
			return err
		}
		if len(rejected) > 0 {
			return &exitError{code: 2, err: fmt.Errorf("run %s was rejected: %s", runKey, strings.Join(rejected, "; "))}
		}
		if grp.Done() {
			runs, err := l.ListRuns(ctx, ledger.RunFilter{Job: jobName, RunKey: runKey, Limit: 1000})
			if err != nil {
				return err
			}
			if g.json {
				if err := printJSON(cmd.OutOrStdout(), runs); err != nil {
					return err
				}
			} else {
				printRuns(cmd.OutOrStdout(), runs, true)
			}
			if !grp.Succeeded() {
				return &exitError{code: 2, err: fmt.Errorf("run %s did not succeed: %v", runKey, grp.ByStatus)}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return &exitError{code: 3, err: fmt.Errorf("run %s not finished after %s (so far %v)", runKey, timeout, grp.ByStatus)}
		case <-tick.C:
		}
	}
}
