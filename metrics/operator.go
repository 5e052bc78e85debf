package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chatplat/job-service/ledger"
)

// operatorMetrics are the on-call's gauges that describe this node rather than one run.
type operatorMetrics struct {
	attempts     *prometheus.CounterVec
	inFlight     prometheus.Gauge
	alertsFailed *prometheus.CounterVec
}

func newOperatorMetrics(reg *prometheus.Registry, constLabels prometheus.Labels) operatorMetrics {
	o := operatorMetrics{
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "runs_in_flight", ConstLabels: constLabels,
			Help: "Runs executing on this node (claimed and started, not yet finished).",
		}),
		alertsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "alert_deliveries_failed_total", ConstLabels: constLabels,
			Help: "Alert deliveries that failed after their retries, by channel (webhook, email).",
		}, []string{"channel"}),
	}
	reg.MustRegister(o.inFlight, o.alertsFailed)
	return o
}

// SetInFlight records how many runs execute on this node now.
func (m *Metrics) SetInFlight(n int) { m.op.inFlight.Set(float64(n)) }

// AlertDeliveryFailed counts one alert that could not be delivered on channel.
func (m *Metrics) AlertDeliveryFailed(channel string) {
	m.op.alertsFailed.WithLabelValues(channel).Inc()
}

// SetBuildInfo exposes job_service_build_info{version, revision, go_version} = 1.
func (m *Metrics) SetBuildInfo(version, revision, goVersion string) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "job_service_build_info", ConstLabels: prometheus.Labels{"node": m.node},
		Help: "Always 1; the labels say which build this node runs.",
	}, []string{"version", "revision", "go_version"})
	if err := m.reg.Register(g); err != nil {
		return // already set: a build does not change while the process runs
	}
	g.WithLabelValues(version, revision, goVersion).Set(1)
}

// LedgerView is what the ledger collector reads at scrape time (ledger.Ledger implements it).
type LedgerView interface {
	LastSuccess(ctx context.Context, jobs []string) (map[string]time.Time, error)
	Backlog(ctx context.Context) ([]ledger.BacklogEntry, error)
}

// ledgerCollector exposes cluster-wide figures read from the ledger on each scrape: every
// node reports the same values, so rules aggregate them with max by (job).
type ledgerCollector struct {
	view        LedgerView
	jobs        func() []string
	lastSuccess *prometheus.Desc
	due         *prometheus.Desc
	retrying    *prometheus.Desc
	oldestDue   *prometheus.Desc
	up          *prometheus.Desc
}

// WatchLedger registers the collector of last success per job and due backlog per job.
func (m *Metrics) WatchLedger(view LedgerView, jobs func() []string) {
	cl := prometheus.Labels{"node": m.node}
	m.reg.MustRegister(&ledgerCollector{view: view, jobs: jobs,
		lastSuccess: prometheus.NewDesc(Namespace+"_last_success_timestamp_seconds",
			"When the job's last successful run finished (Unix seconds), from the ledger; absent before the first.", []string{"job"}, cl),
		due: prometheus.NewDesc(Namespace+"_due_backlog",
			"Runs of the job whose scheduled time has come and that no node has taken yet, from the ledger.", []string{"job"}, cl),
		retrying: prometheus.NewDesc(Namespace+"_retrying_runs",
			"Runs of the job waiting for RocketMQ to redeliver them after a failed attempt.", []string{"job"}, cl),
		oldestDue: prometheus.NewDesc(Namespace+"_oldest_due_age_seconds",
			"Age of the oldest due run no node took yet, per job (0 when none).", []string{"job"}, cl),
		up: prometheus.NewDesc(Namespace+"_ledger_scrape_ok",
			"1 when the ledger figures of this scrape could be read, else 0.", nil, cl),
	})
}

func (c *ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lastSuccess
	ch <- c.due
	ch <- c.retrying
	ch <- c.oldestDue
	ch <- c.up
}

func (c *ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	// A scrape must answer within the scraper's timeout even when Postgres does not.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ok := 1.0
	jobs := c.jobs()
	if last, err := c.view.LastSuccess(ctx, jobs); err == nil {
		for j, at := range last {
			ch <- prometheus.MustNewConstMetric(c.lastSuccess, prometheus.GaugeValue, float64(at.UnixNano())/1e9, j)
		}
	} else {
		ok = 0
	}
	if b, err := c.view.Backlog(ctx); err == nil {
		seen := map[string]bool{}
		now := time.Now()
		for _, e := range b {
			seen[e.Job] = true
			ch <- prometheus.MustNewConstMetric(c.due, prometheus.GaugeValue, float64(e.Due), e.Job)
			ch <- prometheus.MustNewConstMetric(c.retrying, prometheus.GaugeValue, float64(e.Retrying), e.Job)
			age := 0.0
			if e.OldestDue != nil {
				age = now.Sub(*e.OldestDue).Seconds()
			}
			ch <- prometheus.MustNewConstMetric(c.oldestDue, prometheus.GaugeValue, age, e.Job)
		}
		// Jobs without backlog report 0, so an alert on them resolves instead of going stale.
		for _, j := range jobs {
			if !seen[j] {
				ch <- prometheus.MustNewConstMetric(c.due, prometheus.GaugeValue, 0, j)
				ch <- prometheus.MustNewConstMetric(c.retrying, prometheus.GaugeValue, 0, j)
				ch <- prometheus.MustNewConstMetric(c.oldestDue, prometheus.GaugeValue, 0, j)
			}
		}
	} else {
		ok = 0
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, ok)
}
