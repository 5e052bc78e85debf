package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/chatplat/job-service/config"
)

// lagReport is the RocketMQ consumer-group lag, when it can be read. client-go has no
// consume-stats API (research: rocketmq-facts.md §5), so it comes from RocketMQ's own
// mqadmin consumerProgress, which the local stack ships as deploy/local/mqadmin.sh.
type lagReport struct {
	Group string `json:"group"`
	// Messages is "Consume Diff Total": messages on the broker the group has not consumed,
	// including its %RETRY% queue. Absent when unavailable.
	Messages    *int64     `json:"messages,omitempty"`
	Topics      []TopicLag `json:"topics,omitempty"`
	Source      string     `json:"source,omitempty"`
	Unavailable string     `json:"unavailable,omitempty"`
}

var diffTotal = regexp.MustCompile(`(?m)^Consume Diff Total:\s*(-?\d+)\s*$`)

// parseConsumerProgress reads the total lag from mqadmin consumerProgress output.
func parseConsumerProgress(out string) (int64, error) {
	m := diffTotal.FindStringSubmatch(out)
	if m == nil {
		return 0, errors.New("no \"Consume Diff Total\" in mqadmin output")
	}
	return strconv.ParseInt(m[1], 10, 64)
}

// readLag reads the lag of the config's job group (readGroupLag).
func readLag(ctx context.Context, cfg *config.Config, script, brokerMetrics string) lagReport {
	return readGroupLag(ctx, cfg, cfg.RocketMQ.ConsumerGroup, script, brokerMetrics)
}

// readScheduleLag reads the lag of the schedule topic's group: fires the nodes have not
// consumed (timer messages count once their time has come).
func readScheduleLag(ctx context.Context, cfg *config.Config, script, brokerMetrics string) lagReport {
	return readGroupLag(ctx, cfg, cfg.RocketMQ.ScheduleGroup(), script, brokerMetrics)
}

// readGroupLag reads group's lag from the broker's exporter, else runs script
// consumerProgress. Every failure becomes an "unavailable" report: lag is extra information,
// never a reason for backlog to fail.
func readGroupLag(ctx context.Context, cfg *config.Config, group, script, brokerMetrics string) (r lagReport) {
	r = lagReport{Group: group}
	if script == "" {
		r.Unavailable = "not requested"
		return r
	}
	// The broker's own exporter is cheap and exact; mqadmin (a JVM start) is the fallback.
	var exporterErr error
	if brokerMetrics != "" {
		n, topics, err := readLagExporter(ctx, brokerMetrics, r.Group)
		if err == nil {
			r.Messages, r.Topics, r.Source = &n, topics, "broker metrics "+brokerMetrics
			return r
		}
		exporterErr = err
	}
	defer func() {
		if exporterErr != nil && r.Messages == nil {
			r.Unavailable += "; " + exporterErr.Error()
		}
	}()
	if script == "" {
		r.Unavailable = "not requested"
		return r
	}
	if _, err := os.Stat(script); err != nil {
		r.Unavailable = fmt.Sprintf("%s not found (it ships with the local stack; elsewhere read the RocketMQ dashboard's consumer-group lag)", script)
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, script, "consumerProgress", "-n", strings.Join(cfg.RocketMQ.NameServers, ";"),
		"-g", group)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		r.Unavailable = fmt.Sprintf("%s consumerProgress: %v: %s", script, err, lastLine(stderr.String()))
		return r
	}
	n, err := parseConsumerProgress(stdout.String())
	if err != nil {
		r.Unavailable = err.Error()
		return r
	}
	r.Messages, r.Source = &n, "mqadmin consumerProgress"
	return r
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" && !strings.HasPrefix(l, "at ") {
			return oneLine(l, 200)
		}
	}
	return ""
}

func (r lagReport) String() string {
	if r.Messages == nil {
		return fmt.Sprintf("RocketMQ lag of group %s: unavailable (%s)", r.Group, r.Unavailable)
	}
	s := fmt.Sprintf("RocketMQ lag of group %s: %d message(s) not yet consumed (%s)", r.Group, *r.Messages, r.Source)
	for _, t := range r.Topics {
		s += fmt.Sprintf("\n  %s: %d", t.Topic, t.Messages)
	}
	return s
}
