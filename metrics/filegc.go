package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatplat/job-service/ledger"
)

// FileGCView is what the file GC collector reads at scrape time (ledger.Ledger implements it).
type FileGCView interface {
	FileGCSweeps(ctx context.Context, job string) ([]ledger.FileGCSweep, error)
}

// fileGCCollector exposes the daily sweep's backlog and how often in a row it was capped,
// read from the ledger (the runs' results) on each scrape: the same on every node, so rules
// aggregate with max.
type fileGCCollector struct {
	view    FileGCView
	job     string
	backlog *prometheus.Desc
	capped  *prometheus.Desc
}

// WatchFileGC registers the collector of the file_gc sweep's backlog per shard.
func (m *Metrics) WatchFileGC(view FileGCView, job string) {
	cl := prometheus.Labels{"node": m.node}
	m.reg.MustRegister(&fileGCCollector{view: view, job: job,
		backlog: prometheus.NewDesc(Namespace+"_filegc_backlog_files",
			"Collectable files (deleted, unreferenced, past the grace period) and tombstones the shard's latest scheduled file_gc run left, from its result.",
			[]string{"shard"}, cl),
		capped: prometheus.NewDesc(Namespace+"_filegc_capped_runs_in_a_row",
			"How many of the shard's latest scheduled file_gc runs stopped at max_deletes, newest first (daily: days in a row).",
			[]string{"shard"}, cl),
	})
}

func (c *fileGCCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.capped
}

func (c *fileGCCollector) Collect(ch chan<- prometheus.Metric) {
	// A scrape must answer within the scraper's timeout even when Postgres does not; the
	// ledger collector's jobservice_ledger_scrape_ok reports an unreadable ledger.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sweeps, err := c.view.FileGCSweeps(ctx, c.job)
	if err != nil {
		return
	}
	for _, s := range sweeps {
		shard := strconv.Itoa(s.Shard)
		ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(s.Backlog), shard)
		ch <- prometheus.MustNewConstMetric(c.capped, prometheus.GaugeValue, float64(s.CappedInARow), shard)
	}
}
