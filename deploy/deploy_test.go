// Package deploy holds no Go code: its tests check the deploy artifacts (Dockerfile, compose
// file, Kubernetes manifests), which cannot be started on a machine without Docker. They parse
// every file, decode every object and check the properties operators rely on.
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/internal/app"
)

// fakeSecrets stands in for the Secret/env a real deployment provides.
func fakeSecrets(k string) string {
	return map[string]string{
		"JOBSERVICE_POSTGRES__DSN": "postgres://u:p@db:5432/jobservice",
		"JOBSERVICE_ADMIN__TOKEN":  "from-a-secret",
		// The Secret's other keys (deploy/k8s/secret.example.yaml).
		"JOBSERVICE_S3__ACCESS_KEY":          "from-a-secret",
		"JOBSERVICE_S3__SECRET_KEY":          "from-a-secret",
		"JOBSERVICE_REDIS__PASSWORD":         "from-a-secret",
		"JOBSERVICE_ELASTICSEARCH__PASSWORD": "from-a-secret",
		"JOBSERVICE_NEO4J__PASSWORD":         "from-a-secret",
		"JOBSERVICE_ALERTS__SMTP__PASSWORD":  "from-a-secret",
	}[k]
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	var froms []string
	var final []string // instructions of the last stage
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "FROM ") {
			froms = append(froms, line)
			final = nil
		}
		final = append(final, line)
	}
	require.GreaterOrEqual(t, len(froms), 2, "multi-stage")
	require.Contains(t, string(raw), "CGO_ENABLED=0", "static binary")
	require.Contains(t, froms[len(froms)-1], "distroless/static", "small final image without libc")
	var user string
	for _, l := range final {
		if u, ok := strings.CutPrefix(l, "USER "); ok {
			user = u
		}
	}
	require.Regexp(t, `^[1-9][0-9]*(:[0-9]+)?$`, user, "a numeric non-root user (runAsNonRoot can check it)")
	require.Regexp(t, `ENTRYPOINT \["/usr/local/bin/job-service"`, strings.Join(final, "\n"))
	// The files it copies exist.
	for _, m := range regexp.MustCompile(`(?m)^COPY (configs/\S+)`).FindAllStringSubmatch(string(raw), -1) {
		_, err := os.Stat(filepath.Join("..", m[1]))
		require.NoError(t, err, m[1])
	}
}

type composeFile struct {
	Services map[string]struct {
		Image       string         `yaml:"image"`
		Build       map[string]any `yaml:"build"`
		Healthcheck *struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		DependsOn       map[string]struct{ Condition string } `yaml:"depends_on"`
		Environment     map[string]string                     `yaml:"environment"`
		Volumes         []string                              `yaml:"volumes"`
		StopGracePeriod string                                `yaml:"stop_grace_period"`
	} `yaml:"services"`
}

func TestCompose(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("compose/docker-compose.yml")
	require.NoError(t, err)
	var c composeFile
	require.NoError(t, yaml.Unmarshal(raw, &c))

	// The real images of every server job-service talks to.
	images := map[string]string{}
	for name, s := range c.Services {
		images[name] = s.Image
	}
	for _, want := range []string{"apache/rocketmq:", "apacherocketmq/rocketmq-dashboard:", "postgres:", "minio/minio:",
		"neo4j:", "elasticsearch/elasticsearch:", "redis:"} {
		found := false
		for _, img := range images {
			found = found || strings.Contains(img, want)
		}
		require.True(t, found, "an image %s* in %v", want, images)
	}

	nodes := 0
	for name, s := range c.Services {
		require.NotNil(t, s.Healthcheck, "service %s has no healthcheck", name)
		require.NotEmpty(t, s.Healthcheck.Test, "service %s", name)
		require.Contains(t, []string{"CMD", "CMD-SHELL"}, s.Healthcheck.Test[0], "service %s", name)
		for dep, d := range s.DependsOn {
			_, ok := c.Services[dep]
			require.True(t, ok, "%s depends on unknown service %s", name, dep)
			want := "service_healthy"
			if strings.HasSuffix(dep, "-init") { // one-shot preparation
				want = "service_completed_successfully"
			}
			require.Equal(t, want, d.Condition, "%s waits for %s", name, dep)
		}
		for _, v := range s.Volumes {
			if src, _, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(src, ".") {
				_, err := os.Stat(filepath.Join("compose", src))
				require.NoError(t, err, "%s mounts %s", name, src)
			}
		}
		if !strings.HasPrefix(s.Image, "job-service") {
			continue
		}
		nodes++
		require.NotEmpty(t, s.Build, "%s builds the image", name)
		for _, dep := range []string{"postgres", "namesrv", "broker"} {
			require.Contains(t, s.DependsOn, dep, "%s depends on %s", name, dep)
		}
		require.NotEmpty(t, s.Environment["JOBSERVICE_NODE"], name)
		// The node's config file parses with the compose environment.
		cfg := loadWithEnv(t, filepath.Join("compose", "job-service.yaml"), s.Environment)
		grace, err := time.ParseDuration(s.StopGracePeriod)
		require.NoError(t, err, "%s stop_grace_period", name)
		require.Greater(t, grace, cfg.Consumer.DrainTimeout, "%s: stop_grace_period longer than consumer.drain_timeout", name)
		require.Equal(t, "0.0.0.0:8080", cfg.Admin.Listen, "reachable from the health check and the host")
		require.True(t, cfg.Admin.ProtectReads, "%s: the published admin port must not serve run data without the token", name)
	}
	require.Equal(t, 3, nodes, "three job-service nodes, one per shard of file_gc")
}

// loadWithEnv loads a config file with env (compose's ${VAR:?…} values replaced by a stand-in).
func loadWithEnv(t *testing.T, path string, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := app.LoadConfig(path, func(k string) string {
		v := env[k]
		if strings.HasPrefix(v, "${") {
			return fakeSecrets(k)
		}
		return v
	})
	require.NoError(t, err, path)
	return cfg
}

type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec yaml.Node         `yaml:"spec"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type deploymentSpec struct {
	Replicas int `yaml:"replicas"`
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
			SecurityContext               struct {
				RunAsNonRoot bool `yaml:"runAsNonRoot"`
			} `yaml:"securityContext"`
			Containers []struct {
				Name  string   `yaml:"name"`
				Image string   `yaml:"image"`
				Args  []string `yaml:"args"`
				Ports []struct {
					Name          string `yaml:"name"`
					ContainerPort int    `yaml:"containerPort"`
				} `yaml:"ports"`
				Env []struct {
					Name      string `yaml:"name"`
					ValueFrom struct {
						SecretKeyRef *struct {
							Name string `yaml:"name"`
							Key  string `yaml:"key"`
						} `yaml:"secretKeyRef"`
					} `yaml:"valueFrom"`
				} `yaml:"env"`
				VolumeMounts []struct {
					Name      string `yaml:"name"`
					MountPath string `yaml:"mountPath"`
				} `yaml:"volumeMounts"`
				LivenessProbe  *probe `yaml:"livenessProbe"`
				ReadinessProbe *probe `yaml:"readinessProbe"`
			} `yaml:"containers"`
			Volumes []struct {
				Name      string `yaml:"name"`
				ConfigMap struct {
					Name string `yaml:"name"`
				} `yaml:"configMap"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type pdbSpec struct {
	MinAvailable   any `yaml:"minAvailable"`
	MaxUnavailable any `yaml:"maxUnavailable"`
	Selector       struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
}

func decodeAll(t *testing.T, path string) []k8sObject {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var out []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err, path)
		require.NotEmpty(t, o.APIVersion, "%s: document %d has no apiVersion", path, len(out))
		require.NotEmpty(t, o.Kind, "%s: document %d has no kind", path, len(out))
		require.NotEmpty(t, o.Metadata.Name, "%s: %s has no name", path, o.Kind)
		out = append(out, o)
	}
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestKubernetes(t *testing.T) {
	t.Parallel()
	objs := decodeAll(t, "k8s/job-service.yaml")
	byKind := map[string][]k8sObject{}
	for _, o := range objs {
		byKind[o.Kind] = append(byKind[o.Kind], o)
	}
	for _, k := range []string{"ConfigMap", "Deployment", "Service", "PodDisruptionBudget"} {
		require.Len(t, byKind[k], 1, "one %s", k)
	}
	require.Equal(t, "apps/v1", byKind["Deployment"][0].APIVersion)
	require.Equal(t, "policy/v1", byKind["PodDisruptionBudget"][0].APIVersion)

	var dep deploymentSpec
	require.NoError(t, byKind["Deployment"][0].Spec.Decode(&dep))
	require.Equal(t, 3, dep.Replicas, "one node per shard of file_gc")
	podLabels := dep.Template.Metadata.Labels
	require.True(t, subset(dep.Selector.MatchLabels, podLabels), "the Deployment selects its own pods")
	require.True(t, dep.Template.Spec.SecurityContext.RunAsNonRoot)
	require.Len(t, dep.Template.Spec.Containers, 1)
	c := dep.Template.Spec.Containers[0]
	require.NotNil(t, c.LivenessProbe)
	require.NotNil(t, c.ReadinessProbe)
	require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path)
	require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)

	// The config the pods read is the ConfigMap's, mounted where args point.
	cm := byKind["ConfigMap"][0]
	require.Len(t, dep.Template.Spec.Volumes, 1)
	require.Equal(t, cm.Metadata.Name, dep.Template.Spec.Volumes[0].ConfigMap.Name)
	require.Len(t, c.VolumeMounts, 1)
	cfgFile := ""
	for key := range cm.Data {
		if slices.Contains(c.Args, filepath.Join(c.VolumeMounts[0].MountPath, key)) {
			cfgFile = key
		}
	}
	require.NotEmpty(t, cfgFile, "args --config names a file of the ConfigMap: %v", c.Args)
	cfg, err := app.ParseConfig([]byte(cm.Data[cfgFile]), fakeSecrets)
	require.NoError(t, err, "the ConfigMap's config validates")

	grace := time.Duration(dep.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	require.Greater(t, grace, cfg.Consumer.DrainTimeout, "terminationGracePeriodSeconds > consumer.drain_timeout")

	// Probes and the Service reach the admin port the config listens on.
	_, port, err := splitPort(cfg.Admin.Listen)
	require.NoError(t, err)
	require.Len(t, c.Ports, 1)
	require.Equal(t, port, c.Ports[0].ContainerPort)
	for _, p := range []*probe{c.LivenessProbe, c.ReadinessProbe} {
		require.Contains(t, []any{c.Ports[0].Name, port}, p.HTTPGet.Port)
	}
	require.NotEqual(t, "127.0.0.1", strings.Split(cfg.Admin.Listen, ":")[0], "probes come from the kubelet, not loopback")

	// Secrets come from a Secret reference, never from the manifest.
	secretEnv := map[string]bool{}
	for _, e := range c.Env {
		if e.ValueFrom.SecretKeyRef != nil {
			secretEnv[e.Name] = true
		}
	}
	require.True(t, secretEnv["JOBSERVICE_POSTGRES__DSN"])
	require.True(t, secretEnv["JOBSERVICE_ADMIN__TOKEN"])
	require.NotContains(t, cm.Data[cfgFile], "password")

	var pdb pdbSpec
	require.NoError(t, byKind["PodDisruptionBudget"][0].Spec.Decode(&pdb))
	require.True(t, subset(pdb.Selector.MatchLabels, podLabels), "the PDB selects the Deployment's pods")
	require.True(t, pdb.MinAvailable != nil || pdb.MaxUnavailable != nil)

	var svc struct {
		Selector map[string]string `yaml:"selector"`
	}
	require.NoError(t, byKind["Service"][0].Spec.Decode(&svc))
	require.True(t, subset(svc.Selector, podLabels), "the Service selects the pods")

	// kustomization lists the manifest.
	raw, err := os.ReadFile("k8s/kustomization.yaml")
	require.NoError(t, err)
	var k struct {
		Resources []string `yaml:"resources"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &k))
	require.Contains(t, k.Resources, "job-service.yaml")
}

func splitPort(hostport string) (string, int, error) {
	i := strings.LastIndex(hostport, ":")
	if i < 0 {
		return "", 0, errors.New("no port")
	}
	var p int
	for _, r := range hostport[i+1:] {
		if r < '0' || r > '9' {
			return "", 0, errors.New("bad port")
		}
		p = p*10 + int(r-'0')
	}
	return hostport[:i], p, nil
}
