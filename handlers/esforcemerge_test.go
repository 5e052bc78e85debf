package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
)

func TestValidateIndexPattern(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"chat-messages-*", "audit-*", "logs-2026.11.*", "a+b", "0idx"} {
		require.NoError(t, ValidateIndexPattern(ok), ok)
	}
	for _, bad := range []string{"", "*", "**", ".tasks", "_all", "-audit-*", "a,b", "Chat-*", "a b", "a/b", "a?b", `a"b`} {
		require.Error(t, ValidateIndexPattern(bad), bad)
	}
}

func TestESForceMergeConfigRefusesBadKeys(t *testing.T) {
	t.Parallel()
	_, err := NewESForceMerge(nil, ESForceMergeConfig{Patterns: []string{"chat-*,.security*"}}, time.Now, testenv.Logger(t))
	require.ErrorContains(t, err, "patterns:")
	neg := -1
	_, err = NewESForceMerge(nil, ESForceMergeConfig{MinAgeDays: &neg}, time.Now, testenv.Logger(t))
	require.ErrorContains(t, err, "min_age_days:")
	_, err = NewESForceMerge(nil, ESForceMergeConfig{MaxNumSegments: -2}, time.Now, testenv.Logger(t))
	require.ErrorContains(t, err, "max_num_segments:")
	require.Error(t, (&ESForceMergeArgs{Patterns: []string{"*"}}).Validate())

	// Unset means 7 days; an explicit 0 stays 0.
	h, err := NewESForceMerge(nil, ESForceMergeConfig{}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	require.Equal(t, 7, *h.cfg.MinAgeDays)
	zero := 0
	h, err = NewESForceMerge(nil, ESForceMergeConfig{MinAgeDays: &zero}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	require.Equal(t, 0, *h.cfg.MinAgeDays)
}

func TestESForceMergeWithoutClientOrServer(t *testing.T) {
	t.Parallel()
	h, err := NewESForceMerge(nil, ESForceMergeConfig{}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	_, err = handlertest.Run(context.Background(), h, esRun(ESForceMergeArgs{}))
	require.True(t, job.IsDiscard(err), "no client: retrying cannot help: %v", err)
	require.ErrorContains(t, err, "elasticsearch not configured")

	// Nothing listens on port 1: a plain (retried) error that says what failed.
	down, err := elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{"http://127.0.0.1:1"}, MaxRetries: 1})
	require.NoError(t, err)
	h, err = NewESForceMerge(down, ESForceMergeConfig{}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	_, err = handlertest.Run(context.Background(), h, esRun(ESForceMergeArgs{}))
	require.Error(t, err)
	require.False(t, job.IsDiscard(err))
	require.ErrorContains(t, err, "elasticsearch cluster health")
	require.ErrorContains(t, err, "connection refused")
}

func esRun(args ESForceMergeArgs) handlertest.Job[ESForceMergeArgs] {
	return handlertest.Job[ESForceMergeArgs]{Args: args}
}

// esCreate creates an index with shards primaries, no replicas and optional aliases JSON, and
// writes rounds batches of documents with a refresh after each, so every shard ends up with
// about rounds segments.
func esCreate(t *testing.T, es *testenv.ES, name string, shards, rounds int, aliases string) {
	t.Helper()
	if aliases == "" {
		aliases = "{}"
	}
	es.Do(t, http.MethodPut, "/"+name, fmt.Sprintf(
		`{"settings":{"number_of_shards":%d,"number_of_replicas":0,"refresh_interval":"-1"},"aliases":%s}`, shards, aliases))
	for r := 0; r < rounds; r++ {
		var bulk strings.Builder
		for i := 0; i < 24; i++ { // enough that each shard gets some of every round
			fmt.Fprintf(&bulk, "{\"index\":{}}\n{\"round\":%d,\"i\":%d}\n", r, i)
		}
		es.Do(t, http.MethodPost, "/"+name+"/_bulk?refresh=true", bulk.String())
	}
}

func esGet(t *testing.T, es *testenv.ES, path string, out any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, path, nil)
	require.NoError(t, err)
	res, err := es.Client.Perform(req)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Less(t, res.StatusCode, 300, "GET %s: %s", path, body)
	require.NoError(t, json.Unmarshal(body, out))
}

// esPrimarySegments returns the segment count of each primary shard, by shard number.
func esPrimarySegments(t *testing.T, es *testenv.ES, index string) []int {
	t.Helper()
	var body struct {
		Indices map[string]struct {
			Shards map[string][]struct {
				Routing  struct{ Primary bool } `json:"routing"`
				Segments map[string]any         `json:"segments"`
			} `json:"shards"`
		} `json:"indices"`
	}
	esGet(t, es, "/"+index+"/_segments", &body)
	shards := body.Indices[index].Shards
	out := make([]int, len(shards))
	for num, copies := range shards {
		n, err := strconv.Atoi(num)
		require.NoError(t, err)
		for _, c := range copies {
			if c.Routing.Primary {
				out[n] = len(c.Segments)
			}
		}
	}
	return out
}

type esSettings struct {
	created      time.Time
	writeBlocked bool
}

func esIndexSettings(t *testing.T, es *testenv.ES, index string) esSettings {
	t.Helper()
	var body map[string]struct {
		Settings map[string]string `json:"settings"`
	}
	esGet(t, es, "/"+index+"/_settings?flat_settings=true&expand_wildcards=all", &body)
	s := body[index].Settings
	ms, err := strconv.ParseInt(s["index.creation_date"], 10, 64)
	require.NoError(t, err)
	return esSettings{created: time.UnixMilli(ms), writeBlocked: s["index.blocks.write"] == "true"}
}

func skippedByReason(r ESForceMergeResult) map[string][]string {
	out := map[string][]string{}
	for _, s := range r.Skipped {
		out[s.Reason] = append(out[s.Reason], s.Index)
	}
	for _, v := range out {
		sort.Strings(v)
	}
	return out
}

func mergedNames(r ESForceMergeResult) []string {
	out := []string{}
	for _, m := range r.Merged {
		out = append(out, m.Index)
	}
	sort.Strings(out)
	return out
}

func TestESForceMergeMergesOldFinishedIndices(t *testing.T) {
	es := testenv.NewES(t)
	p := es.Prefix
	ctx := context.Background()

	esCreate(t, es, p+"chat-messages-old", 2, 3, "")
	esCreate(t, es, p+"audit-old", 1, 3, "")
	es.Do(t, http.MethodPut, "/"+p+"audit-old/_block/write", "") // blocked already: merged, block not "set" by us
	esCreate(t, es, p+"chat-messages-merged", 1, 1, "")
	// A rolled-over alias: the old member is merged, the write index is not.
	esCreate(t, es, p+"chat-messages-rolled", 1, 3, fmt.Sprintf(`{%q:{"is_write_index":false}}`, p+"chat"))
	esCreate(t, es, p+"chat-messages-current", 1, 3, fmt.Sprintf(`{%q:{"is_write_index":true}}`, p+"chat"))
	// An alias on one index without is_write_index makes that index its write index.
	esCreate(t, es, p+"audit-solo", 1, 3, fmt.Sprintf(`{%q:{}}`, p+"audit"))
	esCreate(t, es, p+"audit-closed", 1, 3, "")
	es.Do(t, http.MethodPost, "/"+p+"audit-closed/_close", "")
	esCreate(t, es, p+"chat-messages-young", 1, 3, "")
	esCreate(t, es, p+"other-old", 1, 3, "") // matches no pattern

	// The clock stands 1 ms short of 7 days after the young index was created: every other
	// index (created earlier) is older than 7 days, the young one is not.
	young := esIndexSettings(t, es, p+"chat-messages-young").created
	require.True(t, esIndexSettings(t, es, p+"audit-closed").created.Before(young))
	clock := func() time.Time { return young.Add(7*24*time.Hour - time.Millisecond) }
	cfg := ESForceMergeConfig{Patterns: []string{p + "chat-messages-*", p + "audit-*"}, PollInterval: 50 * time.Millisecond}
	h, err := NewESForceMerge(es.Client, cfg, clock, testenv.Logger(t))
	require.NoError(t, err)

	// A dry run changes nothing and names the candidates.
	res, err := handlertest.Run(ctx, h, esRun(ESForceMergeArgs{DryRun: true}))
	require.NoError(t, err)
	r := res.(ESForceMergeResult)
	require.Empty(t, r.Merged)
	require.Equal(t, []string{p + "audit-old", p + "chat-messages-old", p + "chat-messages-rolled"}, skippedByReason(r)[SkipDryRun])
	require.Greater(t, esPrimarySegments(t, es, p+"chat-messages-old")[0], 1)
	require.False(t, esIndexSettings(t, es, p+"chat-messages-old").writeBlocked)

	res, err = handlertest.Run(ctx, h, esRun(ESForceMergeArgs{}))
	require.NoError(t, err)
	r = res.(ESForceMergeResult)
	require.Empty(t, r.Failed)
	require.Equal(t, []string{p + "audit-old", p + "chat-messages-old", p + "chat-messages-rolled"}, mergedNames(r))
	skipped := skippedByReason(r)
	require.Equal(t, []string{p + "chat-messages-young"}, skipped[SkipTooYoung])
	require.Equal(t, []string{p + "chat-messages-merged"}, skipped[SkipAlreadyMerged])
	require.Equal(t, []string{p + "audit-solo", p + "chat-messages-current"}, skipped[SkipWriteIndex])
	require.Equal(t, []string{p + "audit-closed"}, skipped[SkipClosed])
	require.Len(t, r.Skipped, 5, "other-old matches no pattern and is not mentioned")

	for _, m := range r.Merged {
		require.Equal(t, m.Shards, len(esPrimarySegments(t, es, m.Index)))
		require.Greater(t, m.SegmentsBefore, m.Shards, m.Index)
		require.Equal(t, m.Shards, m.SegmentsAfter, m.Index)
		require.NotEmpty(t, m.TaskID)
		require.Equal(t, m.Index != p+"audit-old", m.WriteBlockSet, m.Index)
		for shard, n := range esPrimarySegments(t, es, m.Index) {
			require.Equal(t, 1, n, "%s shard %d", m.Index, shard)
		}
		require.True(t, esIndexSettings(t, es, m.Index).writeBlocked, m.Index)
	}
	require.Len(t, esPrimarySegments(t, es, p+"chat-messages-old"), 2)
	// Untouched: still several segments, still writable.
	for _, idx := range []string{p + "chat-messages-young", p + "chat-messages-current", p + "audit-solo", p + "other-old"} {
		require.Greater(t, esPrimarySegments(t, es, idx)[0], 1, idx)
		require.False(t, esIndexSettings(t, es, idx).writeBlocked, idx)
	}

	// A second run finds nothing left to do.
	res, err = handlertest.Run(ctx, h, esRun(ESForceMergeArgs{}))
	require.NoError(t, err)
	r = res.(ESForceMergeResult)
	require.Empty(t, r.Merged)
	require.Equal(t, []string{p + "audit-old", p + "chat-messages-merged", p + "chat-messages-old", p + "chat-messages-rolled"},
		skippedByReason(r)[SkipAlreadyMerged])
}

func TestESForceMergeMinAgeZeroAndNoMatch(t *testing.T) {
	es := testenv.NewES(t)
	p := es.Prefix
	esCreate(t, es, p+"fresh", 1, 3, "")
	h, err := NewESForceMerge(es.Client, ESForceMergeConfig{Patterns: []string{p + "*"}, PollInterval: 50 * time.Millisecond},
		time.Now, testenv.Logger(t))
	require.NoError(t, err)
	ctx := context.Background()

	res, err := handlertest.Run(ctx, h, esRun(ESForceMergeArgs{}))
	require.NoError(t, err)
	require.Equal(t, []string{p + "fresh"}, skippedByReason(res.(ESForceMergeResult))[SkipTooYoung])

	zero := 0
	res, err = handlertest.Run(ctx, h, esRun(ESForceMergeArgs{MinAgeDays: &zero}))
	require.NoError(t, err)
	require.Equal(t, []string{p + "fresh"}, mergedNames(res.(ESForceMergeResult)))
	require.Equal(t, []int{1}, esPrimarySegments(t, es, p+"fresh"))

	// A pattern that matches nothing is an empty, successful run.
	res, err = handlertest.Run(ctx, h, esRun(ESForceMergeArgs{Patterns: []string{p + "nothing-*"}}))
	require.NoError(t, err)
	r := res.(ESForceMergeResult)
	require.Empty(t, r.Merged)
	require.Empty(t, r.Skipped)
}

// TestESForceMergeDeadlineDefersTheRestAndRetryWaitsForTheTask: a merge still running at
// index_timeout fails the run (retried) without starting more merges that would only queue
// behind it, and the retry waits for that task instead of starting a second merge.
func TestESForceMergeDeadlineDefersTheRestAndRetryWaitsForTheTask(t *testing.T) {
	es := testenv.NewES(t)
	p := es.Prefix
	// Enough documents in enough segments that the merge takes well over a millisecond.
	es.Do(t, http.MethodPut, "/"+p+"a-big", `{"settings":{"number_of_shards":2,"number_of_replicas":0,"refresh_interval":"-1"}}`)
	for r := 0; r < 8; r++ {
		var bulk strings.Builder
		for i := 0; i < 2000; i++ {
			fmt.Fprintf(&bulk, "{\"index\":{}}\n{\"round\":%d,\"i\":%d,\"text\":\"message %d of round %d\"}\n", r, i, i, r)
		}
		es.Do(t, http.MethodPost, "/"+p+"a-big/_bulk?refresh=true", bulk.String())
	}
	esCreate(t, es, p+"b-next", 1, 3, "")
	zero := 0
	h, err := NewESForceMerge(es.Client, ESForceMergeConfig{Patterns: []string{p + "*"}, MinAgeDays: &zero,
		PollInterval: 20 * time.Millisecond}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	h.cfg.IndexTimeout = time.Millisecond // below what config allows: the first poll is already late
	ctx := context.Background()

	res, err := handlertest.Run(ctx, h, esRun(ESForceMergeArgs{}))
	require.Error(t, err)
	require.False(t, job.IsDiscard(err))
	r := res.(ESForceMergeResult)
	require.Len(t, r.Failed, 1)
	require.Equal(t, p+"a-big", r.Failed[0].Index)
	require.NotEmpty(t, r.Failed[0].TaskID, "the task is left running and named")
	require.Contains(t, r.Failed[0].Error, "still running at index_timeout")
	firstTask := r.Failed[0].TaskID
	require.Equal(t, []string{p + "b-next"}, skippedByReason(r)[SkipDeferred])
	require.Greater(t, esPrimarySegments(t, es, p+"b-next")[0], 1, "no merge was queued behind the slow one")

	h.cfg.IndexTimeout = time.Minute
	res, err = handlertest.Run(ctx, h, esRun(ESForceMergeArgs{}))
	require.NoError(t, err)
	r = res.(ESForceMergeResult)
	// Still running when the retry looked: the retry waited for that same task. Done by
	// then: the index is already merged.
	if merged := mergedNames(r); len(merged) == 2 {
		require.Equal(t, firstTask, r.Merged[0].TaskID)
	} else {
		require.Equal(t, []string{p + "a-big"}, skippedByReason(r)[SkipAlreadyMerged])
	}
	require.Equal(t, []int{1, 1}, esPrimarySegments(t, es, p+"a-big"))
	require.Equal(t, []int{1}, esPrimarySegments(t, es, p+"b-next"))
}
