package demo

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
)

func TestSeedElasticsearchGivesForceMergeWork(t *testing.T) {
	es := testenv.NewES(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	require.NoError(t, seedElasticsearch(ctx, es.Client, now, es.Prefix))
	require.NoError(t, seedElasticsearch(ctx, es.Client, now, es.Prefix), "idempotent")

	req, err := http.NewRequest(http.MethodGet, "/"+es.Prefix+"chat-messages-2026.11.16/_count", nil)
	require.NoError(t, err)
	res, err := es.Client.Perform(req)
	require.NoError(t, err)
	defer res.Body.Close()
	var count struct{ Count int }
	require.NoError(t, json.NewDecoder(res.Body).Decode(&count))
	require.Equal(t, 200, count.Count, "a second seed adds no documents")

	zero := 0
	h, err := handlers.NewESForceMerge(es.Client, handlers.ESForceMergeConfig{
		Patterns: []string{es.Prefix + "chat-messages-*", es.Prefix + "audit-*"}, MinAgeDays: &zero, PollInterval: 50 * time.Millisecond,
	}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	out, err := h.Run(ctx, &job.Run[handlers.ESForceMergeArgs]{Envelope: job.Envelope{Job: handlers.ESForceMergeKind, RunKey: "t"}})
	require.NoError(t, err)
	r := out.(handlers.ESForceMergeResult)
	require.Len(t, r.Merged, 4)
	for _, m := range r.Merged {
		require.Equal(t, 4, m.SegmentsBefore, m.Index)
		require.Equal(t, 1, m.SegmentsAfter, m.Index)
	}
	require.Equal(t, []handlers.SkippedIndex{{Index: es.Prefix + "chat-messages-2026.11.26", Reason: handlers.SkipWriteIndex,
		Detail: "write index of alias " + es.Prefix + "chat-messages"}}, r.Skipped)
}

func TestSeedNeo4jLeavesTwoUsersMissing(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	n := testenv.NewNeo4j(t)
	ctx := context.Background()
	var ids []int64
	for i := int64(1); i <= 50; i++ {
		ids = append(ids, i)
	}
	_, err := s.Pool.Exec(ctx, `INSERT INTO users (id, username) SELECT id, 'u' || id FROM unnest($1::bigint[]) id`, ids)
	require.NoError(t, err)
	require.NoError(t, seedNeo4j(ctx, n.Driver, n.Label, ids))
	require.NoError(t, seedNeo4j(ctx, n.Driver, n.Label, ids), "idempotent")

	h, err := handlers.NewGraphConsistency(s.Pool, n.Driver, handlers.GraphConsistencyConfig{Label: n.Label}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	out, err := h.Run(ctx, &job.Run[handlers.GraphConsistencyArgs]{Envelope: job.Envelope{Job: handlers.GraphConsistencyKind, RunKey: "t"}})
	require.True(t, job.IsDiscard(err), "%v", err)
	r := out.(handlers.GraphConsistencyResult)
	require.Equal(t, int64(50), r.PGCount)
	require.Equal(t, int64(49), r.GraphCount)
	require.Equal(t, []int64{49, 50}, r.MissingInGraph)
	require.Equal(t, []int64{OrphanUserNodeID}, r.MissingInPG)
	require.True(t, r.GraphIDIndexed)
}

// The seed runs on any day, any number of times: the alias keeps exactly one write index,
// today's, even when yesterday's seed made yesterday's index the write index.
func TestSeedElasticsearchOnTwoDays(t *testing.T) {
	es := testenv.NewES(t)
	ctx := context.Background()
	day1 := time.Date(2026, 11, 26, 23, 58, 0, 0, time.UTC)
	day2 := day1.Add(42 * time.Minute)
	alias := es.Prefix + "chat-messages"
	for i, now := range []time.Time{day1, day1, day2, day2, day1} {
		require.NoError(t, seedElasticsearch(ctx, es.Client, now, es.Prefix), "seed %d at %s", i, now)
		require.Equal(t, []string{alias + "-" + now.Format("2006.01.02")}, writeIndices(t, es, alias), "seed %d at %s", i, now)
	}
}

func writeIndices(t *testing.T, es *testenv.ES, alias string) []string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "/_alias/"+alias, nil)
	require.NoError(t, err)
	res, err := es.Client.Perform(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	var got map[string]struct {
		Aliases map[string]struct {
			IsWriteIndex bool `json:"is_write_index"`
		} `json:"aliases"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&got))
	var write []string
	for index, a := range got {
		if a.Aliases[alias].IsWriteIndex {
			write = append(write, index)
		}
	}
	return write
}
