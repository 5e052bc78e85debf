package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

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

// registerSearch registers es_forcemerge and graph_consistency. Both are registered even
// when this node has no client for them, so a config that schedules them still starts and a
// forced run fails with a clear, unretried "not configured" instead of being rejected as an
// unknown job.
func registerSearch(reg *handlers.Registry, cfg *config.Config, deps Deps, log *slog.Logger, now func() time.Time) error {
	if deps.ES == nil {
		log.Warn("no elasticsearch.addresses in config; es_forcemerge runs will fail on this node")
	}
	fm, err := handlers.NewESForceMerge(deps.ES, cfg.Handlers.ESForceMerge, now, log.With("handler", handlers.ESForceMergeKind))
	if err != nil {
		return err
	}
	handlers.Register(reg, fm)
	if deps.Neo4j == nil {
		log.Warn("no neo4j.uri in config; graph_consistency runs will fail on this node")
	}
	gc, err := handlers.NewGraphConsistency(deps.DB, deps.Neo4j, cfg.Handlers.GraphConsistency, now,
		log.With("handler", handlers.GraphConsistencyKind))
	if err != nil {
		return err
	}
	handlers.Register(reg, gc)
	return nil
}

// openSearchDeps fills deps with the Elasticsearch and Neo4j clients cfg names and returns a
// function that closes them.
func openSearchDeps(cfg *config.Config, deps *Deps) (func(context.Context) error, error) {
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
