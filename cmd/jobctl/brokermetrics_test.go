package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	rmqconsumer "github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/mq"
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
rocketmq_consumer_lag_messages{cluster="DefaultCluster",node_type="broker",node_id="broker-a",consumer_group="job-service-schedule",topic="JOB_TOPIC_SCHEDULE",is_retry="false",is_system="false"} 2
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

	// The schedule topic's group (the ticker's fires) is reported beside the job group.
	r = readScheduleLag(context.Background(), cfg, "/nonexistent/mqadmin.sh", srv.URL)
	require.Equal(t, "job-service-schedule", r.Group)
	require.NotNil(t, r.Messages, r.Unavailable)
	require.EqualValues(t, 2, *r.Messages)
	require.Equal(t, []TopicLag{{Topic: "JOB_TOPIC_SCHEDULE", Messages: 2}}, r.Topics)
}

// TestBacklogReadsLagFromTheLiveExporter: a consumer group on the stack's broker falls
// behind by a known number of messages, and `jobctl backlog` reports that lag from the
// broker's own exporter (RocketMQ 5.3.3, whose output opens with an OpenTelemetry "target
// info" family), not from mqadmin (the script given does not exist). The broker reports lag
// only for groups with a consumer online, from offsets the client committed; the exporter
// refreshes on its own pace, so the test polls it with a deadline.
func TestBacklogReadsLagFromTheLiveExporter(t *testing.T) {
	s := testenv.NewSchema(t)
	m := testenv.NewMQ(t, 1) // one queue: the committed offset of the warm-up covers it
	cfgPath := writeConfig(t, fmt.Sprintf(`
postgres: {dsn: %q}
rocketmq: {name_servers: [%q], topic: %s, consumer_group: %s, producer_group: %s}
ticker: {enabled: false}
`, s.DSN, m.Config.NameServers[0], m.Config.Topic, m.Config.ConsumerGroup, m.Config.ProducerGroup))
	ctx := context.Background()
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	prod, err := mq.NewProducer(m.Config, "lag-"+testenv.Suffix())
	require.NoError(t, err)
	t.Cleanup(func() { _ = prod.Close() })
	send := func(n int) {
		for i := 0; i < n; i++ {
			_, err := prod.PublishRaw(ctx, m.Config.Topic, "lag", nil, []byte(fmt.Sprintf("m%d", i)), time.Time{})
			require.NoError(t, err)
		}
	}

	// The warm-up message is consumed; every later one is held by the handler, unacknowledged:
	// the group stays online and its committed offset stays at the first held message, so
	// what is sent after the warm-up is exactly the lag (a suspended consumer would still
	// take what its long-poll pull brings back).
	var consumed atomic.Int32
	release := make(chan struct{})
	sub := mq.Subscriber{NameServers: m.Config.NameServers, Group: m.Config.ConsumerGroup, Instance: "lag-" + testenv.Suffix()}
	pc, err := sub.Subscribe(mq.Subscription{Topic: m.Config.Topic, Tags: "*"},
		func(_ context.Context, msgs ...*primitive.MessageExt) (rmqconsumer.ConsumeResult, error) {
			if consumed.Add(int32(len(msgs))) > 1 {
				<-release
			}
			return rmqconsumer.ConsumeSuccess, nil
		})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Shutdown() })
	t.Cleanup(func() { close(release) })
	send(1)
	testenv.Eventually(t, 60*time.Second, func() bool { return consumed.Load() >= 1 }, "the warm-up message to be consumed")
	const behind = 7
	send(behind)

	url := testenv.BrokerMetrics()
	seen, last := int64(-1), ""
	testenv.Eventually(t, 2*time.Minute, func() bool {
		n, _, err := readLagExporter(ctx, url, m.Config.ConsumerGroup)
		if now := fmt.Sprint(n, err); now != last {
			t.Logf("exporter: lag %d, err %v", n, err) // how it converges, should it not
			last = now
		}
		seen = n
		return err == nil && n == behind
	}, "the exporter to report the group's lag")
	out, err := jobctl(t, cfgPath, "--json", "backlog", "--broker-metrics", url, "--mqadmin", "/nonexistent/mqadmin.sh")
	require.NoError(t, err, out)
	var res struct {
		Lag lagReport `json:"rocketmq_lag"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Equal(t, m.Config.ConsumerGroup, res.Lag.Group)
	require.NotNil(t, res.Lag.Messages, out)
	require.EqualValues(t, behind, *res.Lag.Messages, out)
	require.Contains(t, res.Lag.Source, "broker metrics")
	out, err = jobctl(t, cfgPath, "backlog", "--broker-metrics", url, "--mqadmin", "/nonexistent/mqadmin.sh")
	require.NoError(t, err, out)
	require.Contains(t, out, fmt.Sprintf("%d", behind))
	t.Logf("exporter %s: group %s lag %d; jobctl backlog: %s", url, m.Config.ConsumerGroup, seen, strings.TrimSpace(out))
}
