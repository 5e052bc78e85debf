package app

import (
	"context"
	"fmt"
	"net/http"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/handlers"
)

// OpenElasticsearch builds the client of cfg's cluster, or returns nil when cfg names none.
// It does not connect: a cluster that is down fails es_forcemerge runs (which are retried),
// not the node's start.
func OpenElasticsearch(cfg config.ElasticsearchConfig) (*elasticsearch.Client, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = cfg.RequestTimeout
	es, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses: cfg.Addresses,
		Username:  cfg.Username,
		Password:  cfg.Password,
		Transport: tr,
	})
	if err != nil {
		return nil, fmt.Errorf("elasticsearch client: %w", err)
	}
	return es, nil
}

// OpenNeo4j builds the driver of cfg's server, or returns nil when cfg names none. Like
// OpenElasticsearch it does not connect; the caller closes the driver.
func OpenNeo4j(cfg config.Neo4jConfig) (neo4j.DriverWithContext, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	auth := neo4j.NoAuth()
	if cfg.Username != "" {
		auth = neo4j.BasicAuth(cfg.Username, cfg.Password, "")
	}
	d, err := neo4j.NewDriverWithContext(cfg.URI, auth)
	if err != nil {
		return nil, fmt.Errorf("neo4j driver: %w", err)
	}
	return d, nil
}

// openSearchDeps fills deps with the Elasticsearch and Neo4j clients cfg names and returns a
// function that closes them.
func openSearchDeps(cfg *config.Config, deps *handlers.Deps) (func(context.Context) error, error) {
	es, err := OpenElasticsearch(cfg.Elasticsearch)
	if err != nil {
		return nil, err
	}
	neo, err := OpenNeo4j(cfg.Neo4j)
	if err != nil {
		return nil, err
	}
	deps.ES, deps.Neo4j = es, neo
	return func(ctx context.Context) error {
		if neo == nil {
			return nil
		}
		return neo.Close(ctx)
	}, nil
}
