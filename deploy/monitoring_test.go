package deploy

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/chatplat/job-service/metrics"
)

// knownMetrics are the series the rules and the dashboard may use: ours (checked against a
// live registry below) and the RocketMQ 5 broker exporter's (BrokerMetricsConstant, 5.3).
var rocketmqMetrics = []string{"rocketmq_consumer_lag_messages", "rocketmq_send_to_dlq_messages_total"}

var metricName = regexp.MustCompile(`\b(jobservice_[a-z_]+|job_service_[a-z_]+|rocketmq_[a-z_]+)\b`)

// exposedNames returns every metric name a node exposes (after one of each event).
func exposedNames(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New("n")
	m.RunFinished("j", "failed", 1, 1)
	m.AlertDeliveryFailed("webhook")
	m.SetInFlight(1)
	m.SetBuildInfo("v", "r", "go")
	m.WatchLedger(stubLedger{}, func() []string { return []string{"j"} })
	m.WatchFileGC(stubLedger{}, "file_gc")
	fams, err := m.Registry().Gather()
	require.NoError(t, err)
	out := map[string]bool{}
	for _, f := range fams {
		name := f.GetName()
		out[name] = true
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			out[name+suf] = true
		}
	}
	for _, n := range rocketmqMetrics {
		out[n] = true
	}
	return out
}

func checkNames(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	for _, n := range metricName.FindAllString(expr, -1) {
		require.True(t, known[n], "%s uses %s, which nothing exposes", where, n)
	}
}

func TestAlertRules(t *testing.T) {
	t.Parallel()
	path := filepath.Join("prometheus", "job-service.rules.yml")
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var f struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Alert       string
				Expr        string
				Labels      map[string]string
				Annotations map[string]string
			}
		}
	}
	require.NoError(t, yaml.Unmarshal(raw, &f))
	known := exposedNames(t)
	n := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			n++
			require.NotEmpty(t, r.Alert)
			require.NotEmpty(t, r.Expr, r.Alert)
			require.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			checkNames(t, r.Alert, r.Expr, known)
		}
	}
	for _, want := range []string{"jobservice_last_success_timestamp_seconds", "jobservice_oldest_due_age_seconds",
		"jobservice_alert_deliveries_failed_total", "rocketmq_consumer_lag_messages"} {
		require.Contains(t, string(raw), want)
	}
	require.GreaterOrEqual(t, n, 8)
	// promtool (Debian's prometheus package; deploy/local/promtool.sh installs it) checks the
	// PromQL itself. The structural checks above run either way.
	// `make test` installs it, so there a missing promtool is a failure; `-short` runs without.
	p, err := exec.LookPath("promtool")
	if testing.Short() && err != nil {
		return
	}
	require.NoError(t, err, "promtool not found: run deploy/local/promtool.sh (make test does)")
	out, err := exec.Command(p, "check", "rules", path).CombinedOutput()
	require.NoError(t, err, "promtool check rules:\n%s", out)
	require.Contains(t, string(out), "SUCCESS")
	// The rules' behaviour on made-up series (job-service.rules.test.yml).
	out, err = exec.Command(p, "test", "rules", filepath.Join("prometheus", "job-service.rules.test.yml")).CombinedOutput()
	require.NoError(t, err, "promtool test rules:\n%s", out)
	require.Contains(t, string(out), "SUCCESS")
}

func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join("grafana", "job-service.json"))
	require.NoError(t, err)
	var d struct {
		Title  string
		UID    string
		Panels []struct {
			ID      int
			Title   string
			Targets []struct{ Expr string }
		}
	}
	require.NoError(t, json.Unmarshal(raw, &d))
	require.Equal(t, "job-service", d.UID)
	known := exposedNames(t)
	ids := map[int]bool{}
	all := ""
	for _, p := range d.Panels {
		require.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		require.NotEmpty(t, p.Targets, p.Title)
		for _, tg := range p.Targets {
			checkNames(t, p.Title, tg.Expr, known)
			all += tg.Expr + "\n"
		}
	}
	for _, want := range []string{"rocketmq_consumer_lag_messages", `is_retry="true"`, "rocketmq_send_to_dlq_messages_total",
		"jobservice_runs_in_flight", "jobservice_due_backlog", "jobservice_last_success_timestamp_seconds"} {
		require.True(t, strings.Contains(all, want), "dashboard lacks %s", want)
	}
}
