package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/config"
)

// exposition is shaped like RocketMQ 5.3's exporter output: labels from BrokerMetricsConstant.
// exposition opens as RocketMQ 5.3.3's exporter does (read off the local broker): with an
// OpenTelemetry "target info" family the Prometheus text parser does not know.
const exposition = `# TYPE target info
# HELP target Target metadata
target_info{} 1
# HELP rocketmq_broker_permission default view for gauge.
# TYPE rocketmq_broker_permission gauge
rocketmq_broker_permission{otel_scope_name="broker-meter",cluster="DefaultCluster",node_id="broker-a",node_type="broker"} 6.0 1796181635969
# HELP rocketmq_consumer_lag_messages The number of messages that have not been consumed
# TYPE rocketmq_consumer_lag_messages gauge
rocketmq_consumer_lag_messages{cluster="DefaultCluster",node_type="broker",node_id="broker-a",consumer_group="job-service",topic="JOB_TOPIC",is_retry="false",is_system="false"} 12
rocketmq_consumer_lag_messages{cluster="DefaultCluster",node_type="broker",node_id="broker-a",consumer_group="job-service",topic="%RETRY%job-service",is_retry="true",is_system="false"} 3
rocketmq_consumer_lag_messages{cluster="DefaultCluster",node_type="broker",node_id="broker-a",consumer_group="other",topic="JOB_TOPIC",is_retry="false",is_system="false"} 999
# TYPE rocketmq_consumer_ready_messages gauge
rocketmq_consumer_ready_messages{consumer_group="job-service",topic="JOB_TOPIC"} 10
`

func TestParseLagExposition(t *testing.T) {
	t.Parallel()
	total, topics, err := parseLagExposition(strings.NewReader(exposition), "job-service")
	require.NoError(t, err)
	require.EqualValues(t, 15, total, "the group's own topic and its %RETRY% topic, not other groups")
	require.Equal(t, []TopicLag{{Topic: "%RETRY%job-service", Retry: true, Messages: 3}, {Topic: "JOB_TOPIC", Messages: 12}}, topics)

	_, _, err = parseLagExposition(strings.NewReader(exposition), "nobody")
	require.ErrorContains(t, err, "no rocketmq_consumer_lag_messages series for group nobody")
	_, _, err = parseLagExposition(strings.NewReader("# TYPE up gauge\nup 1\n"), "job-service")
	require.ErrorContains(t, err, "metricsExporterType=PROM")
}

func TestBacklogPrefersTheBrokerExporter(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, exposition)
	}))
	t.Cleanup(srv.Close)
	cfg := &config.Config{}
	cfg.RocketMQ.ConsumerGroup = "job-service"
	// The mqadmin script does not exist: the exporter alone answers.
	r := readLag(context.Background(), cfg, "/nonexistent/mqadmin.sh", srv.URL)
	require.NotNil(t, r.Messages, r.Unavailable)
	require.EqualValues(t, 15, *r.Messages)
	require.Contains(t, r.Source, "broker metrics")

	r = readLag(context.Background(), cfg, "/nonexistent/mqadmin.sh", "http://127.0.0.1:1/metrics")
	require.Nil(t, r.Messages)
	require.Contains(t, r.Unavailable, "127.0.0.1:1", "why the exporter failed is said too")
}
