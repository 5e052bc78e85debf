package deploy

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/handlers"
)

// TestShippedConfigsFromTheEnvironment: every key a shipped config sets is a key of the
// reference (none unknown, none deprecated), and has an environment variable by the one rule:
// an empty file under the environment that spells out each of the file's keys loads the same
// configuration as the file.
func TestShippedConfigsFromTheEnvironment(t *testing.T) {
	keys := map[string]config.Key{}
	for _, k := range config.Keys(handlers.Definitions(), true) {
		keys[k.Path] = k
	}
	empty := t.TempDir() + "/empty.yaml"
	require.NoError(t, os.WriteFile(empty, nil, 0o600))
	for _, sc := range shippedConfigs(t) {
		t.Run(sc.name, func(t *testing.T) {
			raw, err := os.ReadFile(sc.path)
			require.NoError(t, err)
			var root yaml.Node
			require.NoError(t, yaml.Unmarshal(raw, &root))
			env := map[string]string{}
			for k, v := range sc.env {
				env[k] = v
			}
			n := 0
			var visit func(prefix string, m *yaml.Node)
			visit = func(prefix string, m *yaml.Node) {
				for i := 0; i+1 < len(m.Content); i += 2 {
					path := m.Content[i].Value
					if prefix != "" {
						path = prefix + "." + path
					}
					v := m.Content[i+1]
					k, known := keys[path]
					if !known {
						require.Equal(t, yaml.MappingNode, v.Kind, "%s: %s is no key of the reference", sc.name, path)
						visit(path, v)
						continue
					}
					require.Empty(t, k.Deprecated, "%s: %s is deprecated", sc.name, path)
					name := k.Env()
					require.NotEmpty(t, name, "%s: %s has an environment variable", sc.name, path)
					if _, set := env[name]; !set {
						env[name] = envValue(t, v)
					}
					n++
				}
			}
			require.Equal(t, yaml.DocumentNode, root.Kind)
			visit("", root.Content[0])
			require.Greater(t, n, 20, "keys found in %s", sc.path)

			fromFile, err := config.Load(sc.path, func(k string) string { return sc.env[k] }, handlers.Definitions())
			require.NoError(t, err)
			fromEnv, err := config.Load(empty, func(k string) string { return env[k] }, handlers.Definitions())
			require.NoError(t, err)
			require.Empty(t, fromEnv.Warnings)
			// Compared as YAML, where an empty list and an unset one are the same.
			fromFile.Handlers, fromEnv.Handlers = nil, nil // the raw sections, as written
			want, err := yaml.Marshal(fromFile)
			require.NoError(t, err)
			got, err := yaml.Marshal(fromEnv)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got), "%s from the environment alone", sc.name)
			require.Equal(t, fromFile.Sections, fromEnv.Sections, "%s: handlers from the environment alone", sc.name)
		})
	}
}

// envValue writes a key's value as its variable carries it: a scalar as is, a list of
// scalars comma-separated, anything else as flow YAML.
func envValue(t *testing.T, v *yaml.Node) string {
	t.Helper()
	switch {
	case v.Kind == yaml.ScalarNode:
		return v.Value
	case v.Kind == yaml.SequenceNode && scalars(v):
		var items []string
		for _, c := range v.Content {
			items = append(items, c.Value)
		}
		return strings.Join(items, ",")
	}
	flowStyle(v)
	out, err := yaml.Marshal(v)
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

func scalars(v *yaml.Node) bool {
	for _, c := range v.Content {
		if c.Kind != yaml.ScalarNode {
			return false
		}
	}
	return true
}

func flowStyle(n *yaml.Node) {
	n.Style |= yaml.FlowStyle
	for _, c := range n.Content {
		flowStyle(c)
	}
}
