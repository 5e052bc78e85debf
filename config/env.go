package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/chatplat/job-service/job"
)

// deprecatedEnv are the variables of the hand-kept list the one rule (Key.Env) replaced. They
// still set their key for one release, with a warning naming the new variable; the new one
// wins when both are set. JOBSERVICE_NODE is the rule's own name for node and stays.
var deprecatedEnv = []struct{ old, path string }{
	{"JOBSERVICE_POSTGRES_DSN", "postgres.dsn"},
	{"JOBSERVICE_ROCKETMQ_NAME_SERVERS", "rocketmq.name_servers"},
	{"JOBSERVICE_ROCKETMQ_ACCESS_KEY", "rocketmq.access_key"},
	{"JOBSERVICE_ROCKETMQ_SECRET_KEY", "rocketmq.secret_key"},
	{"JOBSERVICE_ADMIN_TOKEN", "admin.token"},
	{"JOBSERVICE_ADMIN_LISTEN", "admin.listen"},
	{"JOBSERVICE_REDIS_PASSWORD", "redis.password"},
	{"JOBSERVICE_SMTP_PASSWORD", "alerts.smtp.password"},
	{"JOBSERVICE_ALERTS_WEBHOOK_URL", "alerts.webhook_url"},
	{"JOBSERVICE_S3_ENDPOINT", "s3.endpoint"},
	{"JOBSERVICE_S3_ACCESS_KEY", "s3.access_key"},
	{"JOBSERVICE_S3_SECRET_KEY", "s3.secret_key"},
	{"JOBSERVICE_ELASTICSEARCH_ADDRESSES", "elasticsearch.addresses"},
	{"JOBSERVICE_ELASTICSEARCH_PASSWORD", "elasticsearch.password"},
	{"JOBSERVICE_NEO4J_URI", "neo4j.uri"},
	{"JOBSERVICE_NEO4J_PASSWORD", "neo4j.password"},
}

// overlay lays the environment over the file's YAML tree: every key's variable (Key.Env)
// that is set replaces the key's value, creating the sections on its path. It returns
// the warnings about deprecated variables, and an error naming the variable for a value
// that does not decode as its key's type.
func overlay(root *yaml.Node, env func(string) string, keys []Key) ([]string, error) {
	if env == nil {
		return nil, nil
	}
	byPath := make(map[string]Key, len(keys))
	for _, k := range keys {
		byPath[k.Path] = k
	}
	var warnings []string
	var errs []error
	apply := func(name, value string, k Key) {
		n, err := valueNode(value, k)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: %s (%s): %w", name, k.Path, err))
			return
		}
		setPath(root, strings.Split(k.Path, "."), n)
	}
	for _, d := range deprecatedEnv {
		v := env(d.old)
		if v == "" {
			continue
		}
		k := byPath[d.path]
		if env(k.Env()) != "" {
			warnings = append(warnings, fmt.Sprintf("%s is deprecated and ignored: %s is set too (it wins)", d.old, k.Env()))
			continue
		}
		warnings = append(warnings, fmt.Sprintf("%s is deprecated: rename it %s (it still sets %s in this release)", d.old, k.Env(), d.path))
		apply(d.old, v, k)
	}
	for _, k := range keys {
		name := k.Env()
		if name == "" {
			continue
		}
		if v := env(name); v != "" {
			apply(name, v, k)
		}
	}
	return warnings, errors.Join(errs...)
}

// valueNode turns a variable's value into the YAML node of k, and checks that it decodes as
// k's type, so a bad value is reported under the variable's name.
func valueNode(value string, k Key) (*yaml.Node, error) {
	var n *yaml.Node
	switch k.value {
	case valueList:
		n = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, item := range strings.Split(value, ",") {
			n.Content = append(n.Content, scalar(strings.TrimSpace(item), k.goType.Elem()))
		}
	case valueYAML:
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(value), &doc); err != nil || len(doc.Content) != 1 {
			return nil, fmt.Errorf("%q is not YAML", value)
		}
		n = doc.Content[0]
	default:
		n = scalar(value, k.goType)
	}
	if err := n.Decode(reflect.New(k.goType).Interface()); err != nil {
		return nil, err
	}
	return n, nil
}

// scalar is a value node; a string field's value stays a string whatever it looks like ("0123",
// "true" as a password).
func scalar(value string, t reflect.Type) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: value}
	if t.Kind() == reflect.String {
		n.Tag = "!!str"
	}
	return n
}

// setPath puts value at path in the mapping tree under root (a document node), replacing what
// is there and creating the mappings on the way.
func setPath(root *yaml.Node, path []string, value *yaml.Node) {
	if root.Kind != yaml.DocumentNode {
		*root = yaml.Node{Kind: yaml.DocumentNode}
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		root.Content = []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}
	}
	m := root.Content[0]
	for i, key := range path {
		var child *yaml.Node
		for j := 0; j+1 < len(m.Content); j += 2 {
			if m.Content[j].Value == key {
				child = m.Content[j+1]
				if i == len(path)-1 {
					m.Content[j+1] = value
				}
				break
			}
		}
		if i == len(path)-1 {
			if child == nil {
				m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, value)
			}
			return
		}
		if child == nil {
			child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, child)
		} else if child.Kind != yaml.MappingNode {
			// An empty section ("handlers:" or "daily_stats: {}" written as null) becomes a mapping.
			*child = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		}
		m = child
	}
}

// deprecatedKeys warns about every deprecated key the tree sets, naming what to write instead.
func deprecatedKeys(root *yaml.Node, keys []Key) []string {
	var out []string
	for _, k := range keys {
		if k.Deprecated == "" || strings.Contains(k.Path, "[]") {
			continue
		}
		if lookup(root, strings.Split(k.Path, ".")) != nil {
			out = append(out, fmt.Sprintf("%s is deprecated: %s", k.Path, k.Deprecated))
		}
	}
	return out
}

func lookup(root *yaml.Node, path []string) *yaml.Node {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil
	}
	n := root.Content[0]
	for _, key := range path {
		if n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == key {
				next = n.Content[j+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// envKeys are the keys the environment can set for a build whose jobs are kinds.
func envKeys(kinds []job.Definition) []Key { return Keys(kinds, true) }

// UnknownVariables warns about each JOBSERVICE_ variable of environ ("NAME=value") that sets
// no key, so a misspelt name is not silently ignored; it suggests the name the rule gives when
// only the level separator is wrong (JOBSERVICE_REDIS_ADDR: JOBSERVICE_REDIS__ADDR).
func UnknownVariables(environ []string, kinds []job.Definition) []string {
	known := map[string]bool{}
	single := map[string]string{}
	for _, k := range envKeys(kinds) {
		if name := k.Env(); name != "" {
			known[name] = true
			single[strings.ReplaceAll(name, "__", "_")] = name
		}
	}
	for _, d := range deprecatedEnv {
		known[d.old] = true
	}
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || known[name] {
			continue
		}
		w := name + " sets no key (docs/configuration.md, \"Environment\")"
		if s, ok := single[name]; ok {
			w = name + " sets no key: did you mean " + s + "?"
		}
		out = append(out, w)
	}
	return out
}
