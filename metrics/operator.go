package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// operatorMetrics are the on-call's gauges that describe this node rather than one run.
type operatorMetrics struct {
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
