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
	cfg, err := parse([]byte("postgres: {dsn: postgres://x@127.0.0.1/db}\nelasticsearch: {username: elastic}\nneo4j: {username: neo4j}\n"),
		func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, []string{"http://a:9200", "https://b:9200"}, cfg.Elasticsearch.Addresses)
	require.Equal(t, "es-secret", cfg.Elasticsearch.Password)
	require.Equal(t, "neo4j+s://graph:7687", cfg.Neo4j.URI)
	require.Equal(t, "neo-secret", cfg.Neo4j.Password)

	// Without the sections the config is valid: those jobs just cannot run on this node.
	cfg, err = parse([]byte("postgres: {dsn: postgres://x@127.0.0.1/db}\n"), noEnv)
	require.NoError(t, err)
	require.False(t, cfg.Elasticsearch.Enabled())
	require.False(t, cfg.Neo4j.Enabled())
}

func TestSearchSectionsNameTheKey(t *testing.T) {
	t.Parallel()
	base := "postgres: {dsn: postgres://x@127.0.0.1/db}\n"
	cases := map[string]string{
		"elasticsearch.addresses": "elasticsearch: {addresses: ['127.0.0.1:9200']}\n",
		"elasticsearch.username":  "elasticsearch: {addresses: ['http://h:9200'], password: p}\n",
		"neo4j.uri":               "neo4j: {uri: 'http://h:7687'}\n",
	}
	for want, yaml := range cases {
		_, err := parse([]byte(base+yaml), noEnv)
		require.ErrorContains(t, err, "config: "+want, yaml)
	}
}
