package config

import "slices"

// Servers a job kind needs besides Postgres (the ledger's, always configured) and RocketMQ.
const (
	ServerRedis         = "redis"
	ServerS3            = "s3"
	ServerElasticsearch = "elasticsearch"
	ServerNeo4j         = "neo4j"
)

// jobServers names the servers each job kind of the design talks to besides Postgres.
var jobServers = map[string][]string{
	"token_blacklist":   {ServerRedis},
	"file_gc":           {ServerS3},
	"es_forcemerge":     {ServerElasticsearch},
	"graph_consistency": {ServerNeo4j},
}

// JobServers returns the servers kind needs besides Postgres and RocketMQ.
func JobServers(kind string) []string { return slices.Clone(jobServers[kind]) }

// UnconfiguredServers returns the servers kind needs that c does not configure: its runs
// would fail at once saying so.
func (c Config) UnconfiguredServers(kind string) []string {
	var out []string
	for _, s := range jobServers[kind] {
		ok := false
		switch s {
		case ServerRedis:
			ok = c.Redis.Addr != ""
		case ServerS3:
			ok = c.S3.Endpoint != ""
		case ServerElasticsearch:
			ok = c.Elasticsearch.Enabled()
		case ServerNeo4j:
			ok = c.Neo4j.Enabled()
		}
		if !ok {
			out = append(out, s)
		}
	}
	return out
}
