// Package demo seeds the local stack with data every job has real work to do on. Each seeder
// is idempotent: running `jobctl seed-demo` twice leaves the same data as running it once.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
)

// SeedElasticsearch creates daily indices matching es_forcemerge's default patterns, each with
// several segments: chat-messages-<day> for the 10th, 9th and 8th day before now and
// audit-<day> for the 9th, all members of an alias, and chat-messages-<today>, the alias's
// write index, which es_forcemerge must leave alone. Elasticsearch stamps an index's creation
// date itself, so they are only old by name: configs/local.yaml sets min_age_days 0 for the
// demo. Indices that exist are left as they are. The seed runs on any day, any number of
// times: an alias has at most one write index, so indices join their alias as read members and
// one atomic alias update then moves the write flag from an earlier day's index to today's.
func SeedElasticsearch(ctx context.Context, es *elasticsearch.Client, now time.Time) error {
	return seedElasticsearch(ctx, es, now, "")
}

func seedElasticsearch(ctx context.Context, es *elasticsearch.Client, now time.Time, prefix string) error {
	day := func(n int) string { return now.UTC().AddDate(0, 0, -n).Format("2006.01.02") }
	type index struct {
		name, alias string
		write       bool
	}
	indices := []index{
		{prefix + "chat-messages-" + day(10), prefix + "chat-messages", false},
		{prefix + "chat-messages-" + day(9), prefix + "chat-messages", false},
		{prefix + "chat-messages-" + day(8), prefix + "chat-messages", false},
		{prefix + "audit-" + day(9), prefix + "audit", false},
		{prefix + "chat-messages-" + day(0), prefix + "chat-messages", true},
	}
	for _, idx := range indices {
		res, err := esapi.IndicesExistsRequest{Index: []string{idx.name}}.Do(ctx, es)
		if err != nil {
			return fmt.Errorf("seed elasticsearch: %s exists: %w", idx.name, err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			continue
		}
		body := fmt.Sprintf(`{"settings":{"number_of_shards":1,"number_of_replicas":0,"refresh_interval":"-1"},
			"aliases":{%q:{"is_write_index":false}}}`, idx.alias)
		if err := esDo(ctx, es, esapi.IndicesCreateRequest{Index: idx.name, Body: strings.NewReader(body)}); err != nil {
			return fmt.Errorf("seed elasticsearch: create %s: %w", idx.name, err)
		}
		// Each refreshed batch becomes a segment: four of them give the merge work to do.
		for round := 0; round < 4; round++ {
			var bulk strings.Builder
			for i := 0; i < 50; i++ {
				doc, _ := json.Marshal(map[string]any{"channel_id": i % 7, "seq": round*50 + i, "body": fmt.Sprintf("demo message %d", round*50+i)})
				fmt.Fprintf(&bulk, "{\"index\":{}}\n%s\n", doc)
			}
			if err := esDo(ctx, es, esapi.BulkRequest{Index: idx.name, Body: strings.NewReader(bulk.String()), Refresh: "true"}); err != nil {
				return fmt.Errorf("seed elasticsearch: write %s: %w", idx.name, err)
			}
		}
	}
	for _, idx := range indices {
		if idx.write {
			if err := makeWriteIndex(ctx, es, idx.alias, idx.name); err != nil {
				return fmt.Errorf("seed elasticsearch: %w", err)
			}
		}
	}
	return nil
}

// makeWriteIndex makes index the only write index of alias in one atomic alias update, so a
// reader of the alias never sees two write indices or none.
func makeWriteIndex(ctx context.Context, es *elasticsearch.Client, alias, index string) error {
	res, err := esapi.IndicesGetAliasRequest{Name: []string{alias}}.Do(ctx, es)
	if err != nil {
		return fmt.Errorf("get alias %s: %w", alias, err)
	}
	defer res.Body.Close()
	if res.IsError() {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
		return fmt.Errorf("get alias %s: %s: %.300s", alias, res.Status(), body)
	}
	var members map[string]struct {
		Aliases map[string]struct {
			IsWriteIndex bool `json:"is_write_index"`
		} `json:"aliases"`
	}
	if err := json.NewDecoder(res.Body).Decode(&members); err != nil {
		return fmt.Errorf("decode alias %s: %w", alias, err)
	}
	type add struct {
		Index        string `json:"index"`
		Alias        string `json:"alias"`
		IsWriteIndex bool   `json:"is_write_index"`
	}
	var actions []map[string]add
	for name, m := range members {
		if name != index && m.Aliases[alias].IsWriteIndex {
			actions = append(actions, map[string]add{"add": {Index: name, Alias: alias}})
		}
	}
	if m, ok := members[index]; ok && m.Aliases[alias].IsWriteIndex && len(actions) == 0 {
		return nil
	}
	actions = append(actions, map[string]add{"add": {Index: index, Alias: alias, IsWriteIndex: true}})
	body, err := json.Marshal(map[string]any{"actions": actions})
	if err != nil {
		return fmt.Errorf("encode alias actions: %w", err)
	}
	if err := esDo(ctx, es, esapi.IndicesUpdateAliasesRequest{Body: strings.NewReader(string(body))}); err != nil {
		return fmt.Errorf("make %s the write index of %s: %w", index, alias, err)
	}
	return nil
}

func esDo(ctx context.Context, es *elasticsearch.Client, req esapi.Request) error {
	res, err := req.Do(ctx, es)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.IsError() {
		return fmt.Errorf("%s: %.300s", res.Status(), body)
	}
	var bulk struct {
		Errors bool `json:"errors"`
	}
	if json.Unmarshal(body, &bulk) == nil && bulk.Errors {
		return fmt.Errorf("bulk item errors: %.300s", body)
	}
	return nil
}

// OrphanUserNodeID is the id of the one :User node SeedNeo4j creates without a Postgres user,
// so graph_consistency has an id to report on that side too.
const OrphanUserNodeID = 990_000_001

// SeedNeo4j creates a :User {id} node for every id of userIDs except the two largest, plus one
// node (OrphanUserNodeID) no user has, and the index on :User(id) graph_consistency's chunked
// comparison uses. MERGE makes it idempotent.
func SeedNeo4j(ctx context.Context, driver neo4j.DriverWithContext, userIDs []int64) error {
	return seedNeo4j(ctx, driver, "User", userIDs)
}

func seedNeo4j(ctx context.Context, driver neo4j.DriverWithContext, label string, userIDs []int64) error {
	ids := slices.Clone(userIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if len(ids) > 2 {
		ids = ids[:len(ids)-2] // the two newest users never reached the graph
	}
	ids = append(ids, OrphanUserNodeID)
	// label is "User" or a test's random label: a plain identifier.
	if _, err := neo4j.ExecuteQuery(ctx, driver, fmt.Sprintf("CREATE INDEX %s IF NOT EXISTS FOR (u:`%s`) ON (u.id)",
		strings.ToLower(label)+"_id", label), nil, neo4j.EagerResultTransformer); err != nil {
		return fmt.Errorf("seed neo4j: index: %w", err)
	}
	if _, err := neo4j.ExecuteQuery(ctx, driver, "CALL db.awaitIndexes(60)", nil, neo4j.EagerResultTransformer); err != nil {
		return fmt.Errorf("seed neo4j: wait for index: %w", err)
	}
	for start := 0; start < len(ids); start += 5000 {
		batch := ids[start:min(start+5000, len(ids))]
		if _, err := neo4j.ExecuteQuery(ctx, driver, fmt.Sprintf("UNWIND $ids AS id MERGE (:`%s` {id: id})", label),
			map[string]any{"ids": batch}, neo4j.EagerResultTransformer); err != nil {
			return fmt.Errorf("seed neo4j: users: %w", err)
		}
	}
	return nil
}
