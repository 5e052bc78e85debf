package testenv

// BrokerMetrics is the URL of the stack broker's Prometheus exporter (RocketMQ 5's
// metricsExporterType=PROM; deploy/local/env.sh sets JOBSVC_RMQ_METRICS).
func BrokerMetrics() string {
	return getenv("JOBSVC_RMQ_METRICS", "http://127.0.0.1:55557/metrics")
}
