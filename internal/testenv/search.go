package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
)

// ESURL is the Elasticsearch address of the local stack.
func ESURL() string { return getenv("JOBSVC_ES_URL", "http://127.0.0.1:59200") }

// Neo4jURI is the Bolt address of the local stack's Neo4j (auth disabled).
func Neo4jURI() string { return getenv("JOBSVC_NEO4J_URI", "bolt://127.0.0.1:57687") }

// ES is a client of the real Elasticsearch and an index prefix unique to one test.
type ES struct {
	Client *elasticsearch.Client
	// Prefix starts every index name the test creates ("t-<random>-"); indices matching
	// Prefix+"*" are deleted at cleanup.
	Prefix string
}

// NewES checks that Elasticsearch answers and returns a client and a fresh index prefix.
func NewES(t testing.TB) *ES {
	t.Helper()
	Integration(t)
	es, err := elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{ESURL()}})
	if err != nil {
		t.Fatalf("testenv: elasticsearch client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := esapi.ClusterHealthRequest{}.Do(ctx, es)
	if err != nil {
		t.Fatalf("testenv: elasticsearch at %s is not reachable (run `make stack-up`): %v", ESURL(), err)
	}
	res.Body.Close()
	e := &ES{Client: es, Prefix: "t-" + Suffix() + "-"}
	t.Cleanup(func() { e.deleteAll(t) })
	return e
}

// deleteAll deletes the test's indices by name: Elasticsearch 8 refuses wildcard deletes
// (action.destructive_requires_name), so they are listed first.
func (e *ES) deleteAll(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := esapi.CatIndicesRequest{Index: []string{e.Prefix + "*"}, Format: "json", H: []string{"index"},
		ExpandWildcards: "all"}.Do(ctx, e.Client)
	if err != nil {
		t.Logf("testenv: list indices %s*: %v", e.Prefix, err)
		return
	}
	defer res.Body.Close()
	var list []struct{ Index string }
	if err := json.NewDecoder(res.Body).Decode(&list); err != nil || res.IsError() {
		t.Logf("testenv: list indices %s*: %s %v", e.Prefix, res.Status(), err)
		return
	}
	names := make([]string, 0, len(list))
	for _, l := range list {
		names = append(names, l.Index)
	}
	if len(names) == 0 {
		return
	}
	del, err := esapi.IndicesDeleteRequest{Index: names}.Do(ctx, e.Client)
	if err != nil {
		t.Logf("testenv: delete indices %v: %v", names, err)
		return
	}
	defer del.Body.Close()
	if del.IsError() {
		b, _ := io.ReadAll(io.LimitReader(del.Body, 4096))
		t.Logf("testenv: delete indices %v: %s: %s", names, del.Status(), b)
	}
}

// Do sends a raw request (method, path, JSON body or "") and fails the test on an error status.
func (e *ES) Do(t testing.TB, method, path, body string) {
	t.Helper()
	req, err := http.NewRequest(method, path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := e.Client.Perform(req)
	if err != nil {
		t.Fatalf("testenv: %s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		t.Fatalf("testenv: %s %s: %s: %s", method, path, res.Status, b)
	}
}

// Neo4j is a driver on the real Neo4j and a node label unique to one test.
type Neo4j struct {
	Driver neo4j.DriverWithContext
	// Label is "User_<random>"; nodes with it are deleted at cleanup.
	Label string
}

// NewNeo4j checks that Neo4j answers and returns a driver and a fresh label.
func NewNeo4j(t testing.TB) *Neo4j {
	t.Helper()
	Integration(t)
	d, err := neo4j.NewDriverWithContext(Neo4jURI(), neo4j.NoAuth())
	if err != nil {
		t.Fatalf("testenv: neo4j driver: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.VerifyConnectivity(ctx); err != nil {
		t.Fatalf("testenv: neo4j at %s is not reachable (run `make stack-up`): %v", Neo4jURI(), err)
	}
	n := &Neo4j{Driver: d, Label: "User_" + Suffix()}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		// The label is random hex from Suffix, a safe identifier.
		if _, err := neo4j.ExecuteQuery(ctx, d, fmt.Sprintf("MATCH (n:`%s`) DETACH DELETE n", n.Label),
			nil, neo4j.EagerResultTransformer); err != nil {
			t.Logf("testenv: delete :%s nodes: %v", n.Label, err)
		}
		// Indexes a test created on its label go too.
		idx, err := neo4j.ExecuteQuery(ctx, d, "SHOW INDEXES YIELD name, labelsOrTypes WHERE $label IN labelsOrTypes RETURN name",
			map[string]any{"label": n.Label}, neo4j.EagerResultTransformer)
		if err != nil {
			t.Logf("testenv: list indexes on :%s: %v", n.Label, err)
		} else {
			for _, r := range idx.Records {
				name, _ := r.Values[0].(string)
				if _, err := neo4j.ExecuteQuery(ctx, d, fmt.Sprintf("DROP INDEX `%s` IF EXISTS", strings.ReplaceAll(name, "`", "``")),
					nil, neo4j.EagerResultTransformer); err != nil {
					t.Logf("testenv: drop index %s: %v", name, err)
				}
			}
		}
		_ = d.Close(ctx)
	})
	return n
}
