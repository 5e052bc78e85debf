package config

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// ElasticsearchConfig is the client of the cluster es_forcemerge maintains. No addresses
// means this node has no Elasticsearch: the node starts, and es_forcemerge runs fail saying so.
type ElasticsearchConfig struct {
	// Addresses are http(s) URLs of the cluster's nodes.
	Addresses []string `yaml:"addresses"`
	// Username for basic auth; required with a password.
	Username string `yaml:"username"`
	// Password for basic auth.
	Password string `yaml:"password"`
	// RequestTimeout bounds one HTTP request (merges run as tasks, so requests are short).
	RequestTimeout time.Duration `yaml:"request_timeout"`
}

// Enabled reports whether the section names a cluster.
func (c ElasticsearchConfig) Enabled() bool { return len(c.Addresses) > 0 }

// WithDefaults fills unset fields.
func (c ElasticsearchConfig) WithDefaults() ElasticsearchConfig {
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 30 * time.Second
	}
	return c
}

// Validate names the first bad key, relative to the section.
func (c ElasticsearchConfig) Validate() error {
	for _, a := range c.Addresses {
		u, err := url.Parse(a)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("addresses: %q is not an http(s) URL", a)
		}
	}
	if c.Password != "" && c.Username == "" {
		return errors.New("username: required with a password")
	}
	if c.RequestTimeout < time.Second {
		return fmt.Errorf("request_timeout: %s is below 1s", c.RequestTimeout)
	}
	return nil
}

// Neo4jConfig is the client of the graph graph_consistency checks. No URI means this node has
// no Neo4j: the node starts, and graph_consistency runs fail saying so.
type Neo4jConfig struct {
	// URI is bolt://, bolt+s://, neo4j:// or neo4j+s://.
	URI string `yaml:"uri"`
	// Username and Password for basic auth; an empty username means no auth (the local stack).
	Username string `yaml:"username"`
	// Password for basic auth.
	Password string `yaml:"password"`
}

// Enabled reports whether the section names a server.
func (c Neo4jConfig) Enabled() bool { return c.URI != "" }

// Validate names the first bad key, relative to the section.
func (c Neo4jConfig) Validate() error {
	if c.URI != "" {
		u, err := url.Parse(c.URI)
		if err != nil || u.Host == "" {
			return fmt.Errorf("uri: %q is not a URI", c.URI)
		}
		switch u.Scheme {
		case "bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc":
		default:
			return fmt.Errorf("uri: scheme %q is not bolt, bolt+s, bolt+ssc, neo4j, neo4j+s or neo4j+ssc", u.Scheme)
		}
	}
	if c.Password != "" && c.Username == "" {
		return errors.New("username: required with a password")
	}
	return nil
}

// searchProblems checks the Elasticsearch and Neo4j sections.
func (c Config) searchProblems() []error {
	var errs []error
	if err := c.Elasticsearch.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("config: elasticsearch.%w", err))
	}
	if err := c.Neo4j.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("config: neo4j.%w", err))
	}
	return errs
}
