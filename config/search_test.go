package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSearchSectionsEnvAndDefaults(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"JOBSERVICE_ELASTICSEARCH_ADDRESSES": "http://a:9200,https://b:9200",
		"JOBSERVICE_ELASTICSEARCH_PASSWORD":  "es-secret",
		"JOBSERVICE_NEO4J_URI":               "neo4j+s://graph:7687",
		"JOBSERVICE_NEO4J_PASSWORD":          "neo-secret",
	}
	cfg, err := Parse([]byte("postgres: {dsn: postgres://x@127.0.0.1/db}\nelasticsearch: {username: elastic}\nneo4j: {username: neo4j}\n"),
		func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, []string{"http://a:9200", "https://b:9200"}, cfg.Elasticsearch.Addresses)
	require.Equal(t, "es-secret", cfg.Elasticsearch.Password)
	require.Equal(t, "neo4j+s://graph:7687", cfg.Neo4j.URI)
	require.Equal(t, "neo-secret", cfg.Neo4j.Password)
	require.Equal(t, 7, *cfg.Handlers.ESForceMerge.MinAgeDays)
	require.Equal(t, 0.001, *cfg.Handlers.GraphConsistency.MaxDeviation)

	// Without the sections the config is valid: those jobs just cannot run on this node.
	cfg, err = Parse([]byte("postgres: {dsn: postgres://x@127.0.0.1/db}\nhandlers: {es_forcemerge: {min_age_days: 0}}\n"), noEnv)
	require.NoError(t, err)
	require.False(t, cfg.Elasticsearch.Enabled())
	require.False(t, cfg.Neo4j.Enabled())
	require.Equal(t, 0, *cfg.Handlers.ESForceMerge.MinAgeDays, "an explicit 0 is kept")
}

func TestSearchSectionsNameTheKey(t *testing.T) {
	t.Parallel()
	base := "postgres: {dsn: postgres://x@127.0.0.1/db}\n"
	cases := map[string]string{
		"elasticsearch.addresses":                  "elasticsearch: {addresses: ['127.0.0.1:9200']}\n",
		"elasticsearch.username":                   "elasticsearch: {addresses: ['http://h:9200'], password: p}\n",
		"neo4j.uri":                                "neo4j: {uri: 'http://h:7687'}\n",
		"handlers.es_forcemerge.patterns":          "handlers: {es_forcemerge: {patterns: ['chat-*,.security']}}\n",
		"handlers.es_forcemerge.min_age_days":      "handlers: {es_forcemerge: {min_age_days: -1}}\n",
		"handlers.graph_consistency.table":         "handlers: {graph_consistency: {table: 'users; DROP TABLE users'}}\n",
		"handlers.graph_consistency.label":         "handlers: {graph_consistency: {label: 'User`) DETACH DELETE (n'}}\n",
		"handlers.graph_consistency.max_deviation": "handlers: {graph_consistency: {max_deviation: 2}}\n",
	}
	for want, yaml := range cases {
		_, err := Parse([]byte(base+yaml), noEnv)
		require.ErrorContains(t, err, "config: "+want, yaml)
	}
}
