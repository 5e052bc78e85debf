package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/chatplat/job-service/archive"
	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/filegc"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/job"
)

// designJob is one row of the design's job table (issue 10; original design §3): when the
// job fires, as the next fire time after a reference instant, in the platform's zone.
type designJob struct {
	kind   string
	shards int
	// next returns the first fire time strictly after ref (ref is in the platform's zone).
	next func(ref time.Time) time.Time
}

func atHour(h int) func(time.Time) time.Time {
	return func(ref time.Time) time.Time {
		t := time.Date(ref.Year(), ref.Month(), ref.Day(), h, 0, 0, 0, ref.Location())
		if !t.After(ref) {
			t = t.AddDate(0, 0, 1)
		}
		return t
	}
}

var designTable = []designJob{
	{"daily_stats", 1, atHour(1)},
	{"pg_partition", 1, atHour(2)},
	{"group_activity", 1, func(ref time.Time) time.Time { // Mondays 02:00
		t := atHour(2)(ref)
		for t.Weekday() != time.Monday {
			t = t.AddDate(0, 0, 1)
		}
		return t
	}},
	{"es_forcemerge", 1, atHour(3)},
	{"file_gc", 3, atHour(4)}, // sharding broadcast over 3 executors
	{"graph_consistency", 1, atHour(5)},
	{"token_blacklist", 1, func(ref time.Time) time.Time { return ref.Truncate(time.Hour).Add(time.Hour) }},
	{"msg_gap_check", 1, func(ref time.Time) time.Time { return ref.Truncate(10 * time.Minute).Add(10 * time.Minute) }},
}

// platformZone is the zone the shipped configs schedule in.
const platformZone = "Asia/Shanghai"

// shippedConfig is one config file a deployment ships, with the environment it runs under.
type shippedConfig struct {
	name string
	path string
	env  map[string]string
}

func shippedConfigs(t *testing.T) []shippedConfig {
	t.Helper()
	dir := t.TempDir()
	// The production example: every secret it documents set, as a Secret would.
	prodEnv := map[string]string{}
	raw, err := os.ReadFile("../configs/production.example.yaml")
	require.NoError(t, err)
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "#   JOBSERVICE_") {
			continue
		}
		for _, f := range strings.Fields(strings.TrimPrefix(line, "#   ")) {
			f = strings.TrimSuffix(f, ",")
			if !strings.HasPrefix(f, "JOBSERVICE_") {
				continue
			}
			prodEnv[f] = fakeValue(f)
		}
	}
	out := []shippedConfig{{"production example", "../configs/production.example.yaml", prodEnv}}

	// Kubernetes: the ConfigMap's file under the Deployment's environment (required Secret
	// keys present, optional ones absent).
	var cm, dep k8sObject
	for _, o := range decodeAll(t, "k8s/job-service.yaml") {
		switch o.Kind {
		case "ConfigMap":
			cm = o
		case "Deployment":
			dep = o
		}
	}
	var spec struct {
		Template struct {
			Spec struct {
				Containers []struct {
					Env []struct {
						Name      string `yaml:"name"`
						Value     string `yaml:"value"`
						ValueFrom struct {
							SecretKeyRef *struct {
								Optional bool `yaml:"optional"`
							} `yaml:"secretKeyRef"`
							FieldRef *struct{} `yaml:"fieldRef"`
						} `yaml:"valueFrom"`
					} `yaml:"env"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	}
	require.NoError(t, dep.Spec.Decode(&spec))
	k8sEnv := map[string]string{}
	for _, e := range spec.Template.Spec.Containers[0].Env {
		switch {
		case e.ValueFrom.SecretKeyRef != nil && !e.ValueFrom.SecretKeyRef.Optional:
			k8sEnv[e.Name] = fakeValue(e.Name)
		case e.ValueFrom.FieldRef != nil:
			k8sEnv[e.Name] = "job-service-0"
		case e.Value != "":
			k8sEnv[e.Name] = e.Value
		}
	}
	k8sPath := filepath.Join(dir, "k8s-config.yaml")
	require.NoError(t, os.WriteFile(k8sPath, []byte(cm.Data["config.yaml"]), 0o600))
	out = append(out, shippedConfig{"k8s ConfigMap", k8sPath, k8sEnv})

	// Compose: the nodes' file under a node's environment.
	var c composeFile
	raw, err = os.ReadFile("compose/docker-compose.yml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &c))
	composeEnv := map[string]string{}
	for k, v := range c.Services["job-service-1"].Environment {
		if strings.HasPrefix(v, "${") {
			v = fakeValue(k)
		}
		composeEnv[k] = v
	}
	return append(out, shippedConfig{"compose", "compose/job-service.yaml", composeEnv})
}

// fakeValue stands in for a secret of the environment.
func fakeValue(key string) string {
	switch key {
	case "JOBSERVICE_POSTGRES__DSN":
		return "postgres://u:p@db:5432/chat"
	case "JOBSERVICE_ROCKETMQ__NAME_SERVERS":
		return "namesrv-0:9876,namesrv-1:9876"
	case "JOBSERVICE_REDIS__ADDR":
		return "redis-0.chat:6379"
	case "JOBSERVICE_S3__ENDPOINT":
		return "minio.storage:9000"
	case "JOBSERVICE_ELASTICSEARCH__ADDRESSES":
		return "https://es-0:9200,https://es-1:9200"
	case "JOBSERVICE_NEO4J__URI":
		return "neo4j+s://neo4j.graph:7687"
	case "JOBSERVICE_ALERTS__WEBHOOK_URL":
		return "https://hooks.example/jobs"
	case "JOBSERVICE_NODE":
		return "node-a"
	}
	return "secret-" + strings.ToLower(key)
}

// TestShippedConfigsDoTheWholeJob: a deployment from any shipped config schedules all eight
// jobs of the design at the design's times in the platform's zone, configures every server
// they use, has alerts on, and passes `job-service config check`.
func TestShippedConfigsDoTheWholeJob(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "job-service")
	build := exec.Command("go", "build", "-o", bin, "./cmd/job-service")
	build.Dir = ".."
	out, err := build.CombinedOutput()
	require.NoError(t, err, "build job-service: %s", out)

	zone, err := time.LoadLocation(platformZone)
	require.NoError(t, err)
	// A Wednesday half past midnight, and a Sunday evening, in the platform's zone.
	refs := []time.Time{time.Date(2026, 12, 2, 0, 30, 0, 0, zone), time.Date(2026, 12, 6, 22, 5, 0, 0, zone)}

	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	for _, name := range []string{"default `" + filegc.DefaultTopic + "`", "**tag** `" + filegc.DefaultTag + "`", "`" + filegc.DefaultGroup + "`"} {
		require.Contains(t, string(readme), name, "the README's file-event contract names it")
	}

	for _, sc := range shippedConfigs(t) {
		t.Run(sc.name, func(t *testing.T) {
			cfg, err := config.Load(sc.path, func(k string) string { return sc.env[k] }, handlers.Definitions())
			require.NoError(t, err)
			// Issue 14: a dead broker's timer messages are republished well before overdue_after.
			tc := cfg.Ticker.WithDefaults()
			require.LessOrEqual(t, tc.BrokerGoneAfter, time.Minute, "ticker.broker_gone_after")
			require.Less(t, tc.BrokerGoneAfter+tc.RepairInterval, tc.OverdueAfter, "ticker.broker_gone_after")

			var kinds []string
			for _, d := range designTable {
				kinds = append(kinds, d.kind)
				spec := cfg.Spec(d.kind)
				require.True(t, spec.IsEnabled(), "%s is scheduled", d.kind)
				require.Equal(t, platformZone, spec.TimeZone, "%s schedule zone", d.kind)
				require.Equal(t, d.shards, spec.Shards, "%s shards", d.kind)
				require.GreaterOrEqual(t, spec.MaxAttempts, 4, "%s: the design's 3 retries", d.kind)
				sched, err := spec.ParseSchedule()
				require.NoError(t, err, d.kind)
				for _, ref := range refs {
					want := d.next(ref)
					got := sched.Next(ref)
					require.True(t, want.Equal(got), "%s after %s: next fire %s, the design says %s", d.kind, ref, got.In(zone), want)
				}
			}
			// Every server the jobs talk to besides Postgres and RocketMQ.
			require.NotEmpty(t, cfg.Redis.Addr, "redis.addr")
			require.NotEmpty(t, cfg.S3.Endpoint, "s3.endpoint")
			require.True(t, cfg.Elasticsearch.Enabled(), "elasticsearch.addresses")
			require.True(t, cfg.Neo4j.Enabled(), "neo4j.uri")
			require.Empty(t, cfg.Warnings, "no deprecated key or variable")
			// The eight jobs of the design, plus this service's own upkeep (archive of cold
			// partitions, issue 13; ledger retention, issue 12), each with its servers.
			want := append(kinds, handlers.PartitionArchiveKind, handlers.RetentionKind)
			sort.Strings(want)
			var scheduled []string
			for k := range cfg.Jobs {
				scheduled = append(scheduled, k)
			}
			sort.Strings(scheduled)
			require.Equal(t, want, scheduled, "the eight jobs of the design and our two upkeep jobs")

			// The event-driven file GC runs, on the topic, group and tag the README's
			// file-event contract names.
			require.True(t, cfg.FileGC.Enabled, "filegc.enabled")
			require.Equal(t, filegc.DefaultTopic, cfg.FileGC.Topic, "filegc.topic")
			require.Equal(t, filegc.DefaultGroup, cfg.FileGC.Group, "filegc.group")
			require.Equal(t, filegc.DefaultTag, cfg.FileGC.Tag, "filegc.tag")
			require.NotEmpty(t, cfg.S3.Endpoint, "the event GC deletes objects")

			require.NotEmpty(t, cfg.Postgres.DSN)
			require.NotEmpty(t, cfg.RocketMQ.NameServers)
			require.True(t, cfg.Alerts.Enabled(), "alerts on")
			require.NotEmpty(t, cfg.Alerts.SMTP.Host, "the design's alert email")
			require.NotEmpty(t, cfg.Alerts.SMTP.To)
			// Report days follow the platform's zone too.
			require.Equal(t, platformZone, cfg.TimeZone)
			require.Equal(t, platformZone, job.SectionOf[handlers.DailyStatsConfig](cfg.Sections, handlers.DailyStatsKind).TimeZone)
			require.Equal(t, platformZone, job.SectionOf[handlers.GroupActivityConfig](cfg.Sections, handlers.GroupActivityKind).TimeZone)

			// The archive moves the audit log only: chat history stays in Postgres until an
			// operator names its hot period; the chat tables are shown commented out, with what
			// enabling them does; a new deployment's first run only previews.
			arch := job.SectionOf[handlers.PartitionArchiveConfig](cfg.Sections, handlers.PartitionArchiveKind).WithDefaults()
			require.Equal(t, []archive.TableConfig{{Table: "audit_logs", HotMonths: 3}}, arch.Tables, "handlers.partition_archive.tables")
			require.True(t, *arch.FirstRunDryRun, "handlers.partition_archive.first_run_dry_run")
			require.True(t, *arch.Drop, "drop after a verified copy")
			text, err := os.ReadFile(sc.path)
			require.NoError(t, err)
			for _, tbl := range []string{"chat_messages", "chat_inbox"} {
				require.Regexp(t, `(?m)^\s*#\s*- \{table: `+tbl+`, hot_months: [0-9]+\}.*(drop|delet)`, string(text),
					"%s shown commented out, saying what enabling it does", tbl)
			}

			check := exec.Command(bin, "config", "check", "--config", sc.path)
			check.Env = []string{"PATH=" + os.Getenv("PATH")}
			for k, v := range sc.env {
				check.Env = append(check.Env, k+"="+v)
			}
			out, err := check.CombinedOutput()
			require.NoError(t, err, "config check: %s", out)
			require.Contains(t, string(out), "ok")
			require.Contains(t, string(out), "partition_archive: archives audit_logs (months older than 3)")
			require.Contains(t, string(out), "chat_messages, chat_inbox are not archived")
			require.Contains(t, string(out), "first run is a dry run")
		})
	}
}

// TestComposeStartsWhatItConfigures: every server the compose config points at is a service
// the compose file starts by default, every default service is one of those (or a node, or a
// one-shot preparation), and the broker's store is on a named volume.
func TestComposeStartsWhatItConfigures(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("compose/docker-compose.yml")
	require.NoError(t, err)
	var c struct {
		Services map[string]struct {
			Profiles []string `yaml:"profiles"`
			Volumes  []string `yaml:"volumes"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &c))
	var env map[string]string
	for _, sc := range shippedConfigs(t) {
		if sc.name == "compose" {
			env = sc.env
		}
	}
	cfg, err := config.Load("compose/job-service.yaml", func(k string) string { return env[k] }, handlers.Definitions())
	require.NoError(t, err)
	host := func(addr string) string {
		addr = strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(addr, "http://"), "https://"), "bolt://")
		h, _, _ := strings.Cut(addr, ":")
		return h
	}
	configured := map[string]bool{"postgres": true} // the DSN comes from the environment
	for _, a := range cfg.RocketMQ.NameServers {
		configured[host(a)] = true
	}
	for _, a := range cfg.RocketMQ.BrokerAddrs {
		configured[host(a)] = true
	}
	configured[host(cfg.Redis.Addr)] = true
	configured[host(cfg.S3.Endpoint)] = true
	for _, a := range cfg.Elasticsearch.Addresses {
		configured[host(a)] = true
	}
	configured[host(cfg.Neo4j.URI)] = true
	configured[cfg.Alerts.SMTP.Host] = true

	for name, s := range c.Services {
		if len(s.Profiles) > 0 || strings.HasPrefix(name, "job-service-") || strings.HasSuffix(name, "-init") {
			continue
		}
		require.True(t, configured[name], "compose starts %s, which the config does not use", name)
	}
	for h := range configured {
		s, ok := c.Services[h]
		require.True(t, ok, "the config uses %s, which compose does not start", h)
		require.Empty(t, s.Profiles, "%s starts by default", h)
	}
	store := false
	for _, v := range c.Services["broker"].Volumes {
		src, dst, _ := strings.Cut(v, ":")
		if _, named := c.Volumes[src]; named && strings.HasPrefix(dst, "/home/rocketmq/store") {
			store = true
		}
	}
	require.True(t, store, "the broker's store is on a named volume")
	brokerConf, err := os.ReadFile("compose/broker.conf")
	require.NoError(t, err)
	require.Contains(t, string(brokerConf), "storePathRootDir = /home/rocketmq/store")
}

// TestShippedNodesMeetShards: every shipped deployment runs at least as many nodes as the
// largest shard count its config schedules (file_gc's 3 of the design's sweep), so no node runs
// two shards of one fire while another shard's node is idle. The production example is the
// config the Kubernetes Deployment's replicas run.
func TestShippedNodesMeetShards(t *testing.T) {
	t.Parallel()
	replicas := 0
	for _, o := range decodeAll(t, "k8s/job-service.yaml") {
		if o.Kind == "Deployment" {
			var spec deploymentSpec
			require.NoError(t, o.Spec.Decode(&spec))
			replicas = spec.Replicas
		}
	}
	raw, err := os.ReadFile("compose/docker-compose.yml")
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal(raw, &c))
	composeNodes := 0
	for name := range c.Services {
		if strings.HasPrefix(name, "job-service-") {
			composeNodes++
		}
	}
	nodes := map[string]int{"production example": replicas, "k8s ConfigMap": replicas, "compose": composeNodes}
	configs := shippedConfigs(t)
	require.Len(t, configs, len(nodes))
	for _, sc := range configs {
		cfg, err := config.Load(sc.path, func(k string) string { return sc.env[k] }, handlers.Definitions())
		require.NoError(t, err, sc.name)
		most, widest := 1, ""
		for kind := range cfg.Jobs {
			if s := cfg.Spec(kind); s.IsEnabled() && s.Shards > most {
				most, widest = s.Shards, kind
			}
		}
		n, ok := nodes[sc.name]
		require.True(t, ok, "%s: which deployment runs it", sc.name)
		require.GreaterOrEqual(t, n, most, "%s: %d nodes for %s's %d shards", sc.name, n, widest, most)
	}
}
