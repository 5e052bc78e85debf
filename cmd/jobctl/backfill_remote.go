package main

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatplat/job-service/admin"
	"github.com/chatplat/job-service/ledger"
)

// remoteBackfill asks a node's API for the backfill; the node publishes its periods. With
// wait it follows GET /api/backfills/{id} until every period has ended: a period pending when
// asked (no run, or one that had failed) counts once it has a newer run that ended.
func remoteBackfill(ctx context.Context, cmd *cobra.Command, g *globals, jobName string, req admin.BackfillRequest,
	wait bool, timeout time.Duration) error {
	c, err := newAPIClient(g)
	if err != nil {
		return err
	}
	var st admin.BackfillStatus
	if err := c.do(ctx, "POST", "/api/jobs/"+url.PathEscape(jobName)+"/backfill", req, &st); err != nil {
		return err
	}
	before := map[int64]int64{} // by period start, in ns
	for _, p := range st.Periods {
		if p.Pending() {
			before[p.Interval.Start.UnixNano()] = p.RunID
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	bar := newProgressBar(cmd.OutOrStdout(), g.json)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for wait {
		ended, ok := 0, 0
		for _, p := range st.Periods {
			old, wasPending := before[p.Interval.Start.UnixNano()]
			if p.RunID != 0 && p.Status.Terminal() && (!wasPending || p.RunID != old) {
				ended++
				if p.Status == ledger.StatusSucceeded {
					ok++
				}
			}
		}
		bar.show(ledger.BackfillProgress{Total: st.Total, Succeeded: ok, Failed: ended - ok, Active: st.Total - ended})
		if ended == st.Total {
			break
		}
		select {
		case <-ctx.Done():
			bar.done()
			return &exitError{code: 3, err: fmt.Errorf("backfill %d: %d of %d period(s) ended after %s", st.Backfill.ID,
				ended, st.Total, timeout)}
		case <-tick.C:
		}
		if err := c.do(ctx, "GET", fmt.Sprintf("/api/backfills/%d", st.Backfill.ID), nil, &st); err != nil && ctx.Err() == nil {
			return err
		}
	}
	bar.done()
	if g.json {
		return printJSON(cmd.OutOrStdout(), st)
	}
	succeeded := 0
	for _, p := range st.Periods {
		if p.Status == ledger.StatusSucceeded {
			succeeded++
		}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "backfill %d of %s: %d period(s), %d of them published now, %d succeeded so far\n",
		st.Backfill.ID, jobName, st.Total, len(before), succeeded)
	if wait && succeeded != st.Total {
		return &exitError{code: 2, err: fmt.Errorf("backfill %d: %d of %d period(s) did not succeed", st.Backfill.ID,
			st.Total-succeeded, st.Total)}
	}
	return nil
}
