package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/neo4j/neo4j-go-driver/v5/neo4j"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// startWith starts a node whose config is c's with edit applied.
func (c *cluster) startWith(name string, edit func(*config.Config)) *Node {
	cfg := c.cfg(name)
	off := false
	cfg.Ticker.Enabled = &off
	edit(cfg)
	require.NoError(c.t, cfg.Validate())
	n := &Node{Cfg: cfg, Log: testenv.Logger(c.t).With("node", name), Instance: name + "-" + testenv.Suffix()}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(c.t, n.Start(ctx))
	c.t.Cleanup(func() { _ = n.Stop(context.Background()) })
	return n
}

func (c *cluster) finishedRun(l *ledger.Ledger, jobName, runKey string) ledger.Run {
	c.waitGroup(l, jobName, runKey, 60*time.Second)
	runs, err := l.ListRuns(context.Background(), ledger.RunFilter{Job: jobName, RunKey: runKey})
	require.NoError(c.t, err)
	require.Len(c.t, runs, 1)
	return runs[0]
}

// TestSearchJobsRunThroughTheNode forces both jobs through RocketMQ on a node wired from
// config, against the real Elasticsearch and Neo4j, and reads their results from the ledger.
func TestSearchJobsRunThroughTheNode(t *testing.T) {
	c := newCluster(t, "  es_forcemerge: {max_attempts: 2}\n  graph_consistency: {max_attempts: 2}")
	es := testenv.NewES(t)
	neo := testenv.NewNeo4j(t)
	c.schema.ApplyChatSchema(t)
	ctx := context.Background()

	es.Do(t, http.MethodPut, "/"+es.Prefix+"chat-messages-1", `{"settings":{"number_of_replicas":0,"refresh_interval":"-1"}}`)
	for i := 0; i < 3; i++ {
		es.Do(t, http.MethodPost, "/"+es.Prefix+"chat-messages-1/_doc?refresh=true", fmt.Sprintf(`{"i":%d}`, i))
	}
	_, err := c.schema.Pool.Exec(ctx, `INSERT INTO users (id, username) SELECT g, 'u' || g FROM generate_series(1, 20) g`)
	require.NoError(t, err)
	_, err = neo4j.ExecuteQuery(ctx, neo.Driver, fmt.Sprintf("UNWIND range(1, 19) AS id CREATE (:`%s` {id: id})", neo.Label),
		nil, neo4j.EagerResultTransformer)
	require.NoError(t, err)

	zero := 0
	n := c.startWith("a", func(cfg *config.Config) {
		cfg.Elasticsearch.Addresses = []string{testenv.ESURL()}
		cfg.Neo4j.URI = testenv.Neo4jURI()
		fm := job.SectionOf[handlers.ESForceMergeConfig](cfg.Sections, handlers.ESForceMergeKind)
		fm.Patterns = []string{es.Prefix + "chat-messages-*"}
		fm.MinAgeDays = &zero
		fm.PollInterval = 50 * time.Millisecond
		job.SectionOf[handlers.GraphConsistencyConfig](cfg.Sections, handlers.GraphConsistencyKind).Label = neo.Label
	})
	p := c.producer()

	env := manual(handlers.ESForceMergeKind, "manual:fm-"+testenv.Suffix(), 1, `{}`)
	c.publish(p, env...)
	run := c.finishedRun(n.Ledger, handlers.ESForceMergeKind, env[0].RunKey)
	require.Equal(t, ledger.StatusSucceeded, run.Status, run.Error)
	var fm handlers.ESForceMergeResult
	require.NoError(t, json.Unmarshal(run.Result, &fm))
	require.Len(t, fm.Merged, 1)
	require.Equal(t, 1, fm.Merged[0].SegmentsAfter)

	env = manual(handlers.GraphConsistencyKind, "manual:gc-"+testenv.Suffix(), 1, `{}`)
	c.publish(p, env...)
	run = c.finishedRun(n.Ledger, handlers.GraphConsistencyKind, env[0].RunKey)
	require.Equal(t, ledger.StatusFailed, run.Status)
	require.Equal(t, 1, run.Attempt, "a deviation is not retried")
	var gc handlers.GraphConsistencyResult
	require.NoError(t, json.Unmarshal(run.Result, &gc))
	require.Equal(t, []int64{20}, gc.MissingInGraph)
	require.Contains(t, run.Error, "missing in graph 1 [20]")
}

// TestNodeWithoutSearchClientsStarts: a config without elasticsearch or neo4j sections starts
// a node that still knows both jobs, and their runs fail at once saying what is missing.
func TestNodeWithoutSearchClientsStarts(t *testing.T) {
	c := newCluster(t, "  es_forcemerge: {schedule: '@daily', max_attempts: 3}")
	n := c.startWith("a", func(*config.Config) {})
	require.True(t, n.Registry.Known(handlers.ESForceMergeKind))
	require.True(t, n.Registry.Known(handlers.GraphConsistencyKind))
	p := c.producer()
	for kind, want := range map[string]string{handlers.ESForceMergeKind: "elasticsearch not configured",
		handlers.GraphConsistencyKind: "neo4j not configured"} {
		env := manual(kind, "manual:nc-"+testenv.Suffix(), 1, `{}`)
		c.publish(p, env...)
		run := c.finishedRun(n.Ledger, kind, env[0].RunKey)
		require.Equal(t, ledger.StatusFailed, run.Status)
		require.Equal(t, 1, run.Attempt)
		require.True(t, strings.Contains(run.Error, want), run.Error)
	}
}
