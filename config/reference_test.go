package config

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/internal/fielddoc"
)

// regenerate is what brings the generated files up to date.
const regenerate = "regenerate with `make config-docs`"

// docs/configuration.md is the reference of this build's structs, as generated.
func TestConfigurationDocIsGenerated(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.NoError(t, WriteReference(&b, handlers.Definitions()))
	doc, err := os.ReadFile("../docs/configuration.md")
	require.NoError(t, err)
	require.Equal(t, b.String(), string(doc), "docs/configuration.md is out of date: "+regenerate)
}

// The meanings the reference prints are the doc comments of today's source.
func TestFieldDocsAreCurrent(t *testing.T) {
	t.Parallel()
	docs, err := fielddoc.Extract("..", "github.com/chatplat/job-service")
	require.NoError(t, err)
	require.Equal(t, docs, fieldDocs, "config/fielddoc_gen.go is out of date: "+regenerate)
}

// Every key says what it means: a field without a doc comment is a key nobody can look up.
func TestEveryKeyHasAMeaning(t *testing.T) {
	t.Parallel()
	var missing []string
	for _, k := range Keys(handlers.Definitions(), false) {
		if k.Meaning == "" {
			missing = append(missing, k.Path)
		}
	}
	require.Empty(t, missing, "keys without a doc comment on their field")
}

// The engine (ticker, consumer, rocketmq, each job's run policy) has at most 35 keys; what
// follows from another key is derived, what only a benchmark turned is a constant.
func TestEngineKeys(t *testing.T) {
	t.Parallel()
	by, total := EngineKeys(Keys(handlers.Definitions(), false))
	require.LessOrEqual(t, total, 35, "engine keys by section: %v", by)
	var b bytes.Buffer
	require.NoError(t, WriteReference(&b, handlers.Definitions()))
	require.Contains(t, b.String(), "Engine keys (ticker, consumer, rocketmq and each job's run policy): ")
}

// Each key is listed once, with a type, and a deprecated key says what replaces it.
func TestKeysListedOnce(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, k := range Keys(handlers.Definitions(), true) {
		require.False(t, seen[k.Path], "%s listed twice", k.Path)
		seen[k.Path] = true
		require.NotEmpty(t, k.Type, k.Path)
		if k.Deprecated != "" {
			require.Regexp(t, `^(set|remove)`, k.Deprecated, k.Path)
		}
	}
	for _, want := range []string{"redis.addr", "jobs.partition_archive.schedule", "handlers.partition_archive.tables[].hot_months", "alerts.smtp.password"} {
		require.True(t, seen[want], want)
	}
	require.False(t, strings.Contains(strings.Join(keysOf(seen), " "), "<kind>"), "expanded per kind")
}

func keysOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
