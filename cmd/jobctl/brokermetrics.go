package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// lagMetric is the gauge RocketMQ 5's broker exporter (metricsExporterType=PROM) publishes per
// consumer group and topic; is_retry="true" marks the group's %RETRY% topic.
const lagMetric = "rocketmq_consumer_lag_messages"

// TopicLag is one topic's share of a group's lag.
type TopicLag struct {
	Topic    string `json:"topic"`
	Retry    bool   `json:"retry"`
	Messages int64  `json:"messages"`
}

// readLagExporter reads group's lag from the broker's Prometheus endpoint.
func readLagExporter(ctx context.Context, url, group string) (int64, []TopicLag, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("broker metrics %s: %w", url, err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("broker metrics %s: %w", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, nil, fmt.Errorf("broker metrics %s: %s", url, res.Status)
	}
	return parseLagExposition(res.Body, group)
}

// parseLagExposition sums lagMetric over the series of group, per topic.
func parseLagExposition(r io.Reader, group string) (int64, []TopicLag, error) {
	// The broker's OpenTelemetry exporter opens with "# TYPE target info", a type the
	// Prometheus text parser refuses: only lagMetric's lines are parsed.
	var only strings.Builder
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, lagMetric+"{") || strings.HasPrefix(line, lagMetric+" ") ||
			strings.HasPrefix(line, "# HELP "+lagMetric+" ") || strings.HasPrefix(line, "# TYPE "+lagMetric+" ") {
			only.WriteString(line)
			only.WriteByte('\n')
		}
	}
	if err := sc.Err(); err != nil {
		return 0, nil, fmt.Errorf("read broker metrics: %w", err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(only.String()))
	if err != nil {
		return 0, nil, fmt.Errorf("parse broker metrics: %w", err)
	}
	fam, ok := families[lagMetric]
	if !ok {
		return 0, nil, fmt.Errorf("no %s in the broker's metrics (is metricsExporterType=PROM set?)", lagMetric)
	}
	byTopic := map[string]*TopicLag{}
	var total int64
	found := false
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["consumer_group"] != group {
			continue
		}
		found = true
		v := int64(m.GetGauge().GetValue())
		t := byTopic[labels["topic"]]
		if t == nil {
			t = &TopicLag{Topic: labels["topic"], Retry: labels["is_retry"] == "true"}
			byTopic[labels["topic"]] = t
		}
		t.Messages += v
		total += v
	}
	if !found {
		// The broker reports a group only once it has consumed; no series is no lag known.
		return 0, nil, fmt.Errorf("no %s series for group %s yet", lagMetric, group)
	}
	out := make([]TopicLag, 0, len(byTopic))
	for _, t := range byTopic {
		out = append(out, *t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return total, out, nil
}
