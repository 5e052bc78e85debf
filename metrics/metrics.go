// Package metrics holds the node's Prometheus metrics on a registry of its own (never the
// global one, so tests and several nodes in one process do not collide). It implements
// consumer.Observer, takes the ticker's leadership changes, and counts what GC deletes.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chatplat/job-service/ledger"
)

// Namespace prefixes every metric name.
const Namespace = "jobservice"

// Metrics is one node's set of metrics. Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	runs        *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	delay       *prometheus.HistogramVec
	retries     *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	leader      prometheus.Gauge
	gcObjects   prometheus.Counter
	gcBytes     prometheus.Counter
	adminWrites *prometheus.CounterVec
	batchSize   *prometheus.HistogramVec
	batchTime   *prometheus.HistogramVec
	batchErrors *prometheus.CounterVec
	op          operatorMetrics
	node        string
}

// New registers every metric, plus the Go runtime and process collectors, on a new registry.
// node is attached to every series as a constant label, so a scrape of several nodes stays
// apart even without the scraper's instance label.
func New(node string) *Metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	constLabels := prometheus.Labels{"node": node}
	m := &Metrics{reg: reg, node: node}
	m.op = newOperatorMetrics(reg, constLabels)
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "runs_total", ConstLabels: constLabels,
		Help: "Runs that ended for good on this node (their last attempt), by job and final status (succeeded, failed).",
	}, []string{"job", "status"})
	m.op.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "attempts_total", ConstLabels: constLabels,
		Help: "Attempts that ended on this node, by job and the status they recorded (succeeded, failed, retrying, interrupted).",
	}, []string{"job", "status"})
	reg.MustRegister(m.op.attempts)
	// Jobs range from a second (a partition check) to an hour (a full GC sweep).
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "run_duration_seconds", ConstLabels: constLabels,
		Help:    "How long one attempt of a job ran, by job and outcome status.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600},
	}, []string{"job", "status"})
	// Timer messages arrive within the broker's precision; retries and backlog push this up.
	m.delay = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "schedule_delay_seconds", ConstLabels: constLabels,
		Help:    "Time from a run's scheduled_at to the start of its attempt, by job.",
		Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
	}, []string{"job"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "retries_total", ConstLabels: constLabels,
		Help: "Attempts that failed and were handed back to RocketMQ for another attempt, by job.",
	}, []string{"job"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "rejected_messages_total", ConstLabels: constLabels,
		Help: "Messages that could never run (malformed, unknown job, bad params), by the job they named.",
	}, []string{"job"})
	m.leader = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "ticker_leader", ConstLabels: constLabels,
		Help: "1 while this node's ticker holds the lease and publishes schedules, else 0.",
	})
	m.gcObjects = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "gc_objects_deleted_total", ConstLabels: constLabels,
		Help: "Objects garbage collection deleted.",
	})
	m.gcBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "gc_bytes_deleted_total", ConstLabels: constLabels,
		Help: "Bytes garbage collection freed.",
	})
	m.adminWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "admin_writes_total", ConstLabels: constLabels,
		Help: "Admin API write requests (run, pause, resume), by action and result (ok, denied, error).",
	}, []string{"action", "result"})
	// Group commit: sizes near ledger_batch mean the ledger is the bottleneck of dispatch.
	m.batchSize = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "ledger_batch_size", ConstLabels: constLabels,
		Help:    "Claims or outcomes written by one group-committed ledger statement, by op (claim, finish).",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	}, []string{"op"})
	m.batchTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "ledger_batch_seconds", ConstLabels: constLabels,
		Help:    "Duration of one group-committed ledger statement, by op (claim, finish).",
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30},
	}, []string{"op"})
	m.batchErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "ledger_batch_errors_total", ConstLabels: constLabels,
		Help: "Group-committed ledger statements that failed as a whole (the database was unreachable), by op.",
	}, []string{"op"})
	for _, c := range []prometheus.Collector{m.runs, m.duration, m.delay, m.retries, m.rejected, m.leader,
		m.gcObjects, m.gcBytes, m.adminWrites, m.batchSize, m.batchTime, m.batchErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	return m
}

// Registry is the registry the metrics live on; other packages may register their own
// collectors on it.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// RunFinished records one attempt's outcome (consumer.Observer).
func (m *Metrics) RunFinished(jobName string, status ledger.Status, duration, scheduleDelay time.Duration) {
	m.op.attempts.WithLabelValues(jobName, string(status)).Inc()
	// A retried or interrupted attempt is not the end of its run: only final outcomes count.
	if status.Terminal() {
		m.runs.WithLabelValues(jobName, string(status)).Inc()
	}
	m.duration.WithLabelValues(jobName, string(status)).Observe(duration.Seconds())
	// A negative delay (a clock a little behind the publisher's) is noise, not an early start.
	m.delay.WithLabelValues(jobName).Observe(max(scheduleDelay, 0).Seconds())
	if status == ledger.StatusRetrying {
		m.retries.WithLabelValues(jobName).Inc()
	}
}

// LedgerBatch records one group-committed ledger statement (ledger.BatchObserver).
func (m *Metrics) LedgerBatch(op string, size int, took time.Duration, err error) {
	m.batchSize.WithLabelValues(op).Observe(float64(size))
	m.batchTime.WithLabelValues(op).Observe(took.Seconds())
	if err != nil {
		m.batchErrors.WithLabelValues(op).Inc()
	}
}

// MessageRejected counts a message that could never run (consumer.Observer).
func (m *Metrics) MessageRejected(jobName string) {
	m.rejected.WithLabelValues(jobName).Inc()
}

// SetLeader follows the ticker's leadership; pass it to Ticker.OnLeadershipChange.
func (m *Metrics) SetLeader(leader bool) {
	if leader {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}

// ObjectsDeleted counts objects and bytes garbage collection deleted.
func (m *Metrics) ObjectsDeleted(n int, bytes int64) {
	if n > 0 {
		m.gcObjects.Add(float64(n))
	}
	if bytes > 0 {
		m.gcBytes.Add(float64(bytes))
	}
}

// AdminWrite counts one admin API write request.
func (m *Metrics) AdminWrite(action, result string) {
	m.adminWrites.WithLabelValues(action, result).Inc()
}
