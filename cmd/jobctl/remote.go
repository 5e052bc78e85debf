package main

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatplat/job-service/admin"
	"github.com/chatplat/job-service/ledger"
)

// The --server versions of the commands: the same output as direct mode, read through the
// admin API.

func remoteRuns(cmd *cobra.Command, g *globals, f ledger.RunFilter) error {
	c, err := newAPIClient(g)
	if err != nil {
		return err
	}
	q := url.Values{"limit": {strconv.Itoa(max(f.Limit, 1))}}
	if f.Job != "" {
		q.Set("job", f.Job)
	}
	if f.Status != "" {
		q.Set("status", string(f.Status))
	}
	if f.RunKey != "" {
		q.Set("run_key", f.RunKey)
	}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339))
	}
	if f.Backfill > 0 {
		q.Set("backfill", strconv.FormatInt(f.Backfill, 10))
	}
	var p admin.RunsPage
	if err := c.do(cmd.Context(), "GET", "/api/runs?"+q.Encode(), nil, &p); err != nil {
		return err
	}
	if g.json {
		return printJSON(cmd.OutOrStdout(), p.Runs)
	}
	printRuns(cmd.OutOrStdout(), p.Runs, false)
	return nil
}

func remoteShow(cmd *cobra.Command, g *globals, id int64) error {
	c, err := newAPIClient(g)
	if err != nil {
		return err
	}
	var d admin.RunDetail
	if err := c.do(cmd.Context(), "GET", "/api/runs/"+strconv.FormatInt(id, 10), nil, &d); err != nil {
		return err
	}
	if g.json {
		out := map[string]any{"run": d.Run, "attempts": d.Attempts}
		if d.Control != nil {
			out["control"] = d.Control
		}
		return printJSON(cmd.OutOrStdout(), out)
	}
	printRunDetail(cmd.OutOrStdout(), d.Run, d.Attempts, d.Control)
	return nil
}

func remotePause(cmd *cobra.Command, g *globals, jobName string, pause bool) error {
	c, err := newAPIClient(g)
	if err != nil {
		return err
	}
	action := map[bool]string{true: "pause", false: "resume"}[pause]
	if err := c.do(cmd.Context(), "POST", "/api/jobs/"+url.PathEscape(jobName)+"/"+action,
		admin.PauseRequest{RequestedBy: requester()}, nil); err != nil {
		return err
	}
	if g.json {
		return printJSON(cmd.OutOrStdout(), map[string]any{"job": jobName, "paused": pause})
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", jobName, map[bool]string{true: "paused", false: "resumed"}[pause])
	return nil
}

func remoteJobs(cmd *cobra.Command, g *globals, next int) error {
	c, err := newAPIClient(g)
	if err != nil {
		return err
	}
	var v struct {
		Jobs []admin.JobView `json:"jobs"`
	}
	if err := c.do(cmd.Context(), "GET", "/api/jobs", nil, &v); err != nil {
		return err
	}
	if next > 0 {
		order := make([]string, 0, len(v.Jobs))
		for _, j := range v.Jobs {
			order = append(order, j.Job)
		}
		fires, err := serverNextFires(cmd.Context(), c, order, next)
		if err != nil {
			return err
		}
		if g.json {
			return printJSON(cmd.OutOrStdout(), fires)
		}
		printNextFires(cmd, fires, order)
		return nil
	}
	if g.json {
		return printJSON(cmd.OutOrStdout(), v.Jobs)
	}
	printJobViews(cmd, v.Jobs)
	return nil
}

func printJobViews(cmd *cobra.Command, jobs []admin.JobView) {
	for _, j := range jobs {
		state := "enabled"
		switch {
		case j.Paused:
			state = "paused"
		case !j.Enabled:
			state = "manual-only"
		}
		next := "-"
		if j.NextFire != nil {
			next = j.NextFire.Local().Format(time.DateTime)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%-20s %-18s %-12s next %-19s last %-10s running %d failed_24h %d\n",
			j.Job, orDash(j.Schedule), state, next, orDash(j.LastStatus), j.Running, j.Failed24h)
	}
}

// remoteRun forces a run through POST /api/jobs/{job}/run and, with wait, follows it through
// GET /api/runs?run_key=.
func remoteRun(ctx context.Context, cmd *cobra.Command, g *globals, req admin.ForceRequest, jobName string, wait bool, timeout time.Duration) error {
	c, err := newAPIClient(g)
	if err != nil {
		return err
	}
	var resp admin.ForceResponse
	if err := c.do(ctx, "POST", "/api/jobs/"+url.PathEscape(jobName)+"/run", req, &resp); err != nil {
		return err
	}
	if !wait {
		if g.json {
			return printJSON(cmd.OutOrStdout(), map[string]any{"job": jobName, "run_key": resp.RunKey, "shards": resp.Shards,
				"run_ids": resp.RunIDs, "interval": resp.Interval})
		}
		fmt.Fprintf(cmd.OutOrStdout(), "published %s run %s (%d shard(s), run ids %v) for %s\n", jobName, resp.RunKey,
			resp.Shards, resp.RunIDs, resp.Interval)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		var p admin.RunsPage
		q := url.Values{"job": {jobName}, "run_key": {resp.RunKey}, "limit": {"1000"}}
		if err := c.do(ctx, "GET", "/api/runs?"+q.Encode(), nil, &p); err != nil && ctx.Err() == nil {
			return err
		}
		done, ok := 0, 0
		counts := map[ledger.Status]int{}
		for _, r := range p.Runs {
			counts[r.Status]++
			if r.Status.Terminal() {
				done++
			}
			if r.Status == ledger.StatusSucceeded {
				ok++
			}
		}
		if done >= resp.Shards && resp.Shards > 0 {
			if g.json {
				if err := printJSON(cmd.OutOrStdout(), p.Runs); err != nil {
					return err
				}
			} else {
				printRuns(cmd.OutOrStdout(), p.Runs, true)
			}
			if ok < resp.Shards {
				return &exitError{code: exitRunBad, err: fmt.Errorf("run %s did not succeed: %v", resp.RunKey, counts)}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return &exitError{code: exitTimeout, err: fmt.Errorf("run %s not finished after %s (so far %v)", resp.RunKey, timeout, counts)}
		case <-tick.C:
		}
	}
}

func remoteBacklog(cmd *cobra.Command, g *globals) error {
	c, err := newAPIClient(g)
	if err != nil {
		return err
	}
	var v struct {
		Ledger []ledger.BacklogEntry `json:"ledger"`
	}
	if err := c.do(cmd.Context(), "GET", "/api/backlog", nil, &v); err != nil {
		return err
	}
	if g.json {
		return printJSON(cmd.OutOrStdout(), v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-20s %6s %9s %s\n", "JOB", "DUE", "RETRYING", "OLDEST DUE")
	for _, e := range v.Ledger {
		oldest := "-"
		if e.OldestDue != nil {
			oldest = e.OldestDue.Local().Format(time.DateTime)
		}
		fmt.Fprintf(&b, "%-20s %6d %9d %s\n", e.Job, e.Due, e.Retrying, oldest)
	}
	b.WriteString("RocketMQ lag of the job and schedule consumer groups: read it from the broker's metrics exporter or dashboard (see README); --server reads the ledger only\n")
	_, err = fmt.Fprint(cmd.OutOrStdout(), b.String())
	return err
}

// remoteControl posts cancel or retry for a run and prints the server's answer.
func remoteControl(cmd *cobra.Command, g *globals, id int64, action string) error {
	c, err := newAPIClient(g)
	if err != nil {
		return err
	}
	var out map[string]any
	if err := c.do(cmd.Context(), "POST", "/api/runs/"+strconv.FormatInt(id, 10)+"/"+action,
		admin.ControlRequest{RequestedBy: requester()}, &out); err != nil {
		return err
	}
	if g.json {
		return printJSON(cmd.OutOrStdout(), out)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "run %d: %s requested:", id, action)
	for _, k := range []string{"status", "pending", "retry_run_id", "run_key", "requested_by"} {
		if v, ok := out[k]; ok {
			fmt.Fprintf(cmd.OutOrStdout(), " %s=%v", k, v)
		}
	}
	fmt.Fprintln(cmd.OutOrStdout())
	return nil
}

// remoteLogs prints a run's log lines through GET /api/runs/{id}/logs; with follow it polls
// for new lines until the run is done.
func remoteLogs(cmd *cobra.Command, g *globals, id int64, follow bool, interval time.Duration) error {
	c, err := newAPIClient(g)
	if err != nil {
		return err
	}
	var after int64
	for {
		var page admin.LogsResponse
		path := "/api/runs/" + strconv.FormatInt(id, 10) + "/logs?after=" + strconv.FormatInt(after, 10)
		if err := c.do(cmd.Context(), "GET", path, nil, &page); err != nil {
			return err
		}
		for _, ln := range page.Lines {
			if g.json {
				if err := printJSON(cmd.OutOrStdout(), ln); err != nil {
					return err
				}
			} else {
				printLogLine(cmd.OutOrStdout(), ln)
			}
			after = max(after, ln.ID)
		}
		if !follow || page.Done {
			return nil
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(interval):
		}
	}
}
