package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/chatplat/job-service/job"
)

// ESForceMergeKind is the job kind of ESForceMerge.
const ESForceMergeKind = "es_forcemerge"

// ESForceMergePolicy is es_forcemerge's default run policy: the design's daily 03:00, with a
// timeout well above the section's index_timeout (1h) so one slow index stops the run by its
// own limit, not by the job's.
func ESForceMergePolicy() job.Spec {
	return job.Spec{Schedule: "0 0 3 * * *", Timeout: 6 * time.Hour,
		Misfire: job.MisfireFireOnce, MisfireBound: 6 * time.Hour}
}

// CheckSpec refuses a job timeout that does not exceed index_timeout: the run would be
// cancelled while waiting for one merge instead of stopping cleanly at its own limit.
func (c ESForceMergeConfig) CheckSpec(s job.Spec) error {
	if s.Timeout <= c.IndexTimeout {
		return fmt.Errorf("timeout: %s must be above handlers.es_forcemerge.index_timeout (%s)", s.Timeout, c.IndexTimeout)
	}
	return nil
}

// Reasons an index is skipped by es_forcemerge.
const (
	SkipTooYoung      = "too_young"      // created less than min_age_days before the run's clock
	SkipAlreadyMerged = "already_merged" // no shard copy has more than max_num_segments segments
	SkipWriteIndex    = "write_index"    // the write index of an alias: still taking writes
	SkipClosed        = "closed"         // closed indices cannot be merged (or even inspected)
	SkipDryRun        = "dry_run"        // would be merged; the run was a dry run
	SkipDeferred      = "deferred"       // an earlier merge overran its deadline; left for the next run
)

// indexPatternRe accepts index names and wildcards. A leading letter or digit keeps system and
// hidden indices (".tasks", ".ds-…") and the "_all"/"-exclusion" syntax out; commas are refused
// because patterns are joined with them in one request path.
var indexPatternRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._*+-]{0,254}$`)

// ValidateIndexPattern refuses what is not a plain lower-case index name or wildcard pattern.
func ValidateIndexPattern(p string) error {
	if !indexPatternRe.MatchString(p) {
		return fmt.Errorf("index pattern %q: want [a-z0-9][a-z0-9._*+-]* (no leading '.', '_' or '-', no commas)", p)
	}
	if strings.Trim(p, "*") == "" {
		return fmt.Errorf("index pattern %q matches every index", p)
	}
	return nil
}

// ESForceMergeConfig configures the es_forcemerge job.
type ESForceMergeConfig struct {
	// Patterns select the indices considered (index names or wildcards).
	Patterns []string `yaml:"patterns"`
	// MinAgeDays: only indices created at least this many days ago are merged. 0 merges any
	// index (write indices are still skipped). Unset means 7.
	MinAgeDays *int `yaml:"min_age_days"`
	// MaxNumSegments is the segment count per shard a merge aims for; indices whose every
	// shard copy already has at most this many are skipped.
	MaxNumSegments int `yaml:"max_num_segments"`
	// IndexTimeout bounds the wait for one index's merge task. A task still running then is
	// left running in Elasticsearch; the run stops and fails so the rest waits for a retry.
	IndexTimeout time.Duration `yaml:"index_timeout"`
	// PollInterval is how often the merge task is polled.
	PollInterval time.Duration `yaml:"poll_interval"`
	// Pause between two merges, to let the cluster's I/O settle.
	Pause time.Duration `yaml:"pause"`
}

// WithDefaults fills unset fields.
func (c ESForceMergeConfig) WithDefaults() ESForceMergeConfig {
	if len(c.Patterns) == 0 {
		c.Patterns = []string{"chat-messages-*", "audit-*"}
	}
	if c.MinAgeDays == nil {
		days := 7
		c.MinAgeDays = &days
	}
	if c.MaxNumSegments == 0 {
		c.MaxNumSegments = 1
	}
	if c.IndexTimeout == 0 {
		c.IndexTimeout = time.Hour
	}
	if c.PollInterval == 0 {
		c.PollInterval = 5 * time.Second
	}
	return c
}

// Validate names the first bad key.
func (c ESForceMergeConfig) Validate() error {
	if len(c.Patterns) == 0 {
		return errors.New("patterns: at least one index pattern is required")
	}
	for _, p := range c.Patterns {
		if err := ValidateIndexPattern(p); err != nil {
			return fmt.Errorf("patterns: %w", err)
		}
	}
	switch {
	case c.MinAgeDays != nil && (*c.MinAgeDays < 0 || *c.MinAgeDays > 3650):
		return fmt.Errorf("min_age_days: %d is outside 0..3650", *c.MinAgeDays)
	case c.MaxNumSegments < 1 || c.MaxNumSegments > 1000:
		return fmt.Errorf("max_num_segments: %d is outside 1..1000", c.MaxNumSegments)
	case c.IndexTimeout < time.Second:
		return fmt.Errorf("index_timeout: %s is below 1s", c.IndexTimeout)
	case c.PollInterval < 10*time.Millisecond || c.PollInterval > time.Minute:
		return fmt.Errorf("poll_interval: %s is outside 10ms..1m", c.PollInterval)
	case c.Pause < 0 || c.Pause > time.Hour:
		return fmt.Errorf("pause: %s is outside 0..1h", c.Pause)
	}
	return nil
}

// ESForceMergeArgs are the run parameters of es_forcemerge; unset fields come from config.
type ESForceMergeArgs struct {
	Patterns       []string `json:"patterns,omitempty"`
	MinAgeDays     *int     `json:"min_age_days,omitempty"`
	MaxNumSegments *int     `json:"max_num_segments,omitempty"`
	// DryRun reports what would be merged without blocking or merging anything.
	DryRun bool `json:"dry_run,omitempty"`
}

// Validate refuses bad patterns and out-of-range numbers.
func (a *ESForceMergeArgs) Validate() error {
	for _, p := range a.Patterns {
		if err := ValidateIndexPattern(p); err != nil {
			return err
		}
	}
	if a.MinAgeDays != nil && (*a.MinAgeDays < 0 || *a.MinAgeDays > 3650) {
		return fmt.Errorf("min_age_days %d is outside 0..3650", *a.MinAgeDays)
	}
	if a.MaxNumSegments != nil && (*a.MaxNumSegments < 1 || *a.MaxNumSegments > 1000) {
		return fmt.Errorf("max_num_segments %d is outside 1..1000", *a.MaxNumSegments)
	}
	return nil
}

// ESForceMerge force-merges old, finished indices down to few segments, which makes them
// smaller and faster to search. Only indices nobody writes to are touched: it skips write
// indices of aliases and young indices, and it sets a write block before merging, because
// merging an index that still takes writes just produces new small segments (and large
// merged segments that never get merged again). The block stays: an old index is finished.
type ESForceMerge struct {
	es  *elasticsearch.Client
	cfg ESForceMergeConfig
	now func() time.Time
	log *slog.Logger
}

// NewESForceMerge returns the es_forcemerge handler. es may be nil on a node whose config has
// no elasticsearch section: the handler is registered and its runs fail saying so.
func NewESForceMerge(es *elasticsearch.Client, cfg ESForceMergeConfig, now func() time.Time, log *slog.Logger) (*ESForceMerge, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("es_forcemerge config: %w", err)
	}
	return &ESForceMerge{es: es, cfg: cfg, now: now, log: log}, nil
}

// Kind implements Handler.
func (h *ESForceMerge) Kind() string { return ESForceMergeKind }

// ESForceMergeResult is the run's result JSON.
type ESForceMergeResult struct {
	Patterns       []string       `json:"patterns"`
	MinAgeDays     int            `json:"min_age_days"`
	MaxNumSegments int            `json:"max_num_segments"`
	DryRun         bool           `json:"dry_run,omitempty"`
	Merged         []MergedIndex  `json:"merged"`
	Skipped        []SkippedIndex `json:"skipped"`
	Failed         []FailedIndex  `json:"failed,omitempty"`
}

// MergedIndex is one index the run merged. Segment counts are summed over primary shards.
type MergedIndex struct {
	Index          string    `json:"index"`
	CreatedAt      time.Time `json:"created_at"`
	Shards         int       `json:"shards"`
	SegmentsBefore int       `json:"segments_before"`
	SegmentsAfter  int       `json:"segments_after"`
	WriteBlockSet  bool      `json:"write_block_set"` // false: it was already blocked
	TaskID         string    `json:"task_id"`
	DurationMS     int64     `json:"duration_ms"`
}

// SkippedIndex is an index the run left alone, and why.
type SkippedIndex struct {
	Index          string `json:"index"`
	Reason         string `json:"reason"`
	Detail         string `json:"detail,omitempty"`
	SegmentsBefore int    `json:"segments_before,omitempty"`
}

// FailedIndex is an index whose merge failed or overran index_timeout.
type FailedIndex struct {
	Index  string `json:"index"`
	TaskID string `json:"task_id,omitempty"`
	Error  string `json:"error"`
}

// esIndex is what the run learns about one index before deciding.
type esIndex struct {
	name       string
	createdAt  time.Time
	closed     bool
	blocked    bool   // index.blocks.write or read_only already set
	writeAlias string // alias this index is the write index of
}

// Run implements Handler.
func (h *ESForceMerge) Run(ctx context.Context, run *job.Run[ESForceMergeArgs]) (any, error) {
	if h.es == nil {
		return nil, job.Discard("elasticsearch not configured",
			errors.New("this node's config has no elasticsearch.addresses; es_forcemerge cannot run here"))
	}
	res := ESForceMergeResult{Patterns: h.cfg.Patterns, MinAgeDays: *h.cfg.MinAgeDays,
		MaxNumSegments: h.cfg.MaxNumSegments, DryRun: run.Args.DryRun, Merged: []MergedIndex{}, Skipped: []SkippedIndex{}}
	if len(run.Args.Patterns) > 0 {
		res.Patterns = run.Args.Patterns
	}
	if run.Args.MinAgeDays != nil {
		res.MinAgeDays = *run.Args.MinAgeDays
	}
	if run.Args.MaxNumSegments != nil {
		res.MaxNumSegments = *run.Args.MaxNumSegments
	}
	// GET / is not what the connectivity check uses: some distributions (and proxies) refuse
	// it, while every cluster answers _cluster/health.
	if _, err := h.call(ctx, "cluster health", esapi.ClusterHealthRequest{}, nil); err != nil {
		return res, err
	}
	indices, err := h.listIndices(ctx, res.Patterns)
	if err != nil {
		return res, err
	}
	cutoff := h.now().Add(-time.Duration(res.MinAgeDays) * 24 * time.Hour)
	running, err := h.runningMerges(ctx)
	if err != nil {
		return res, err
	}
	merges := 0
	for i, idx := range indices {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		switch {
		case idx.closed:
			res.Skipped = append(res.Skipped, SkippedIndex{Index: idx.name, Reason: SkipClosed})
			continue
		case idx.writeAlias != "":
			res.Skipped = append(res.Skipped, SkippedIndex{Index: idx.name, Reason: SkipWriteIndex,
				Detail: "write index of alias " + idx.writeAlias})
			continue
		case idx.createdAt.After(cutoff):
			res.Skipped = append(res.Skipped, SkippedIndex{Index: idx.name, Reason: SkipTooYoung,
				Detail: "created " + idx.createdAt.UTC().Format(time.RFC3339)})
			continue
		}
		seg, err := h.segments(ctx, idx.name)
		if err != nil {
			res.Failed = append(res.Failed, FailedIndex{Index: idx.name, Error: err.Error()})
			continue
		}
		if seg.maxPerCopy <= res.MaxNumSegments {
			res.Skipped = append(res.Skipped, SkippedIndex{Index: idx.name, Reason: SkipAlreadyMerged,
				SegmentsBefore: seg.primary, Detail: fmt.Sprintf("at most %d segments per shard copy", seg.maxPerCopy)})
			continue
		}
		if run.Args.DryRun {
			res.Skipped = append(res.Skipped, SkippedIndex{Index: idx.name, Reason: SkipDryRun, SegmentsBefore: seg.primary})
			continue
		}
		if merges > 0 && h.cfg.Pause > 0 {
			if err := esSleep(ctx, h.cfg.Pause); err != nil {
				return res, err
			}
		}
		merges++
		m, ferr := h.merge(ctx, idx, seg, res.MaxNumSegments, running[idx.name])
		if ferr != nil {
			res.Failed = append(res.Failed, *ferr)
			if ctx.Err() != nil {
				return res, fmt.Errorf("force-merge %s: %w", idx.name, ctx.Err())
			}
			if ferr.TaskID != "" { // timed out: another merge would only queue behind it
				for _, rest := range indices[i+1:] {
					res.Skipped = append(res.Skipped, SkippedIndex{Index: rest.name, Reason: SkipDeferred})
				}
				break
			}
			continue
		}
		res.Merged = append(res.Merged, m)
	}
	if len(res.Failed) > 0 {
		msgs := make([]string, 0, len(res.Failed))
		for _, f := range res.Failed {
			msgs = append(msgs, f.Index+": "+f.Error)
		}
		// A plain error: a cluster busy or restarting now is usually fine on the next attempt,
		// and the indices already merged are skipped then.
		return res, fmt.Errorf("force-merge failed for %d indices: %s", len(res.Failed), strings.Join(msgs, "; "))
	}
	return res, nil
}

// merge blocks writes, starts the merge as a task and polls it to the per-index deadline. A
// retry after a timeout finds the task still running (taskID) and waits for it rather than
// queueing a second merge of the same index.
func (h *ESForceMerge) merge(ctx context.Context, idx esIndex, before esSegments, maxSeg int, taskID string) (MergedIndex, *FailedIndex) {
	start := time.Now()
	m := MergedIndex{Index: idx.name, CreatedAt: idx.createdAt, Shards: before.primaryShards, SegmentsBefore: before.primary}
	fail := func(err error) (MergedIndex, *FailedIndex) {
		return m, &FailedIndex{Index: idx.name, Error: err.Error()}
	}
	if !idx.blocked {
		if _, err := h.call(ctx, "write block on "+idx.name, esapi.IndicesAddBlockRequest{Index: []string{idx.name}, Block: "write"}, nil); err != nil {
			return fail(err)
		}
		m.WriteBlockSet = true
	}
	if taskID == "" {
		var started struct {
			Task string `json:"task"`
		}
		f, flush := false, true
		if _, err := h.call(ctx, "force-merge "+idx.name, esapi.IndicesForcemergeRequest{Index: []string{idx.name},
			MaxNumSegments: &maxSeg, WaitForCompletion: &f, Flush: &flush}, &started); err != nil {
			return fail(err)
		}
		if started.Task == "" {
			return fail(errors.New("force-merge returned no task id"))
		}
		taskID = started.Task
	}
	m.TaskID = taskID
	h.log.InfoContext(ctx, "force-merge started", "index", idx.name, "task", taskID, "segments_before", before.primary)
	if err := h.waitTask(ctx, taskID); err != nil {
		m2, f := fail(err)
		f.TaskID = taskID
		if !errors.Is(err, errTaskTimeout) && ctx.Err() == nil {
			f.TaskID = "" // the task ended (badly): nothing is left running
		}
		return m2, f
	}
	after, err := h.segments(ctx, idx.name)
	if err != nil {
		return fail(err)
	}
	m.SegmentsAfter = after.primary
	m.DurationMS = time.Since(start).Milliseconds()
	h.log.InfoContext(ctx, "force-merge done", "index", idx.name, "segments_after", after.primary, "duration_ms", m.DurationMS)
	return m, nil
}

var errTaskTimeout = errors.New("merge task still running at index_timeout; left running in elasticsearch")

// waitTask polls the task until it completes, fails, or index_timeout passes.
func (h *ESForceMerge) waitTask(ctx context.Context, taskID string) error {
	deadline := time.Now().Add(h.cfg.IndexTimeout)
	for {
		var t struct {
			Completed bool            `json:"completed"`
			Error     json.RawMessage `json:"error"`
			Response  struct {
				Shards struct {
					Total, Failed int
					Failures      json.RawMessage `json:"failures"`
				} `json:"_shards"`
			} `json:"response"`
		}
		status, err := h.call(ctx, "task "+taskID, esapi.TasksGetRequest{TaskID: taskID}, &t)
		switch {
		case status == http.StatusNotFound:
			// The node that ran it restarted and the result was not stored: the segment
			// count afterwards tells whether the merge got done.
			h.log.WarnContext(ctx, "merge task vanished; checking segments", "task", taskID)
			return nil
		case err != nil:
			return err
		case t.Completed && len(t.Error) > 0 && string(t.Error) != "null":
			return fmt.Errorf("merge task %s failed: %s", taskID, t.Error)
		case t.Completed && t.Response.Shards.Failed > 0:
			return fmt.Errorf("merge task %s: %d of %d shards failed: %s", taskID, t.Response.Shards.Failed,
				t.Response.Shards.Total, t.Response.Shards.Failures)
		case t.Completed:
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("task %s after %s: %w", taskID, h.cfg.IndexTimeout, errTaskTimeout)
		}
		if err := esSleep(ctx, h.cfg.PollInterval); err != nil {
			return err
		}
	}
}

// listIndices returns the open and closed indices matching patterns, oldest first, with their
// creation date, write block and write-index status.
func (h *ESForceMerge) listIndices(ctx context.Context, patterns []string) ([]esIndex, error) {
	ignore := true
	var settings map[string]struct {
		Settings map[string]any `json:"settings"`
	}
	if _, err := h.call(ctx, "index settings", esapi.IndicesGetSettingsRequest{Index: patterns,
		ExpandWildcards: "open,closed", FlatSettings: &ignore, IgnoreUnavailable: &ignore}, &settings); err != nil {
		return nil, err
	}
	if len(settings) == 0 {
		return nil, nil
	}
	var cat []struct {
		Index  string `json:"index"`
		Status string `json:"status"`
	}
	if _, err := h.call(ctx, "index states", esapi.CatIndicesRequest{Index: patterns, Format: "json",
		H: []string{"index", "status"}, ExpandWildcards: "open,closed"}, &cat); err != nil {
		return nil, err
	}
	closed := map[string]bool{}
	for _, c := range cat {
		closed[c.Index] = c.Status == "close"
	}
	writeOf, err := h.writeIndices(ctx, patterns)
	if err != nil {
		return nil, err
	}
	out := make([]esIndex, 0, len(settings))
	for name, s := range settings {
		ms, err := strconv.ParseInt(fmt.Sprint(s.Settings["index.creation_date"]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("index %s: creation_date %v: %w", name, s.Settings["index.creation_date"], err)
		}
		out = append(out, esIndex{
			name:       name,
			createdAt:  time.UnixMilli(ms),
			closed:     closed[name],
			blocked:    fmt.Sprint(s.Settings["index.blocks.write"]) == "true" || fmt.Sprint(s.Settings["index.blocks.read_only"]) == "true",
			writeAlias: writeOf[name],
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].createdAt.Equal(out[j].createdAt) {
			return out[i].createdAt.Before(out[j].createdAt)
		}
		return out[i].name < out[j].name
	})
	return out, nil
}

// writeIndices maps each matching index that is the write index of an alias to that alias.
// An index is the write index if an alias names it is_write_index: true, or if the alias
// points at this one index and sets no is_write_index (Elasticsearch then writes through the
// alias to it). Counting an alias's indices needs every index the alias points at, not only
// the matching ones, hence the second request.
func (h *ESForceMerge) writeIndices(ctx context.Context, patterns []string) (map[string]string, error) {
	type aliasesOf map[string]struct {
		Aliases map[string]struct {
			IsWriteIndex *bool `json:"is_write_index"`
		} `json:"aliases"`
	}
	var mine aliasesOf
	ignore := true
	if _, err := h.call(ctx, "aliases", esapi.IndicesGetAliasRequest{Index: patterns, ExpandWildcards: "open,closed",
		IgnoreUnavailable: &ignore}, &mine); err != nil {
		return nil, err
	}
	var names []string
	seen := map[string]bool{}
	for _, a := range mine {
		for alias := range a.Aliases {
			if !seen[alias] {
				seen[alias] = true
				names = append(names, alias)
			}
		}
	}
	out := map[string]string{}
	if len(names) == 0 {
		return out, nil
	}
	var all aliasesOf
	if _, err := h.call(ctx, "alias members", esapi.IndicesGetAliasRequest{Name: names, ExpandWildcards: "all"}, &all); err != nil {
		return nil, err
	}
	members := map[string]int{}
	for _, a := range all {
		for alias := range a.Aliases {
			members[alias]++
		}
	}
	for index, a := range mine {
		for alias, props := range a.Aliases {
			if (props.IsWriteIndex != nil && *props.IsWriteIndex) || (props.IsWriteIndex == nil && members[alias] == 1) {
				out[index] = alias
			}
		}
	}
	return out, nil
}

// runningMerges maps indices to force-merge tasks already running on the cluster.
func (h *ESForceMerge) runningMerges(ctx context.Context) (map[string]string, error) {
	var tasks struct {
		Nodes map[string]struct {
			Tasks map[string]struct {
				Description string `json:"description"`
			} `json:"tasks"`
		} `json:"nodes"`
	}
	detailed := true
	if _, err := h.call(ctx, "running merges", esapi.TasksListRequest{Actions: []string{"indices:admin/forcemerge"},
		Detailed: &detailed}, &tasks); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range tasks.Nodes {
		for id, t := range n.Tasks {
			// "Force-merge indices [a, b], maxSegments[1], …": the format is Elasticsearch's
			// own; if it changes, a retry just queues another merge, which is harmless.
			rest, ok := strings.CutPrefix(t.Description, "Force-merge indices [")
			if !ok {
				continue
			}
			list, _, _ := strings.Cut(rest, "]")
			for _, name := range strings.Split(list, ", ") {
				out[name] = id
			}
		}
	}
	return out, nil
}

type esSegments struct {
	primary       int // segments summed over primary shards
	primaryShards int
	maxPerCopy    int // most segments in any one shard copy, primary or replica
}

func (h *ESForceMerge) segments(ctx context.Context, index string) (esSegments, error) {
	var body struct {
		Indices map[string]struct {
			Shards map[string][]struct {
				Routing struct {
					Primary bool `json:"primary"`
				} `json:"routing"`
				Segments map[string]json.RawMessage `json:"segments"`
			} `json:"shards"`
		} `json:"indices"`
	}
	var c esSegments
	if _, err := h.call(ctx, "segments of "+index, esapi.IndicesSegmentsRequest{Index: []string{index}}, &body); err != nil {
		return c, err
	}
	for _, copies := range body.Indices[index].Shards {
		for _, cp := range copies {
			if cp.Routing.Primary {
				c.primary += len(cp.Segments)
				c.primaryShards++
			}
			c.maxPerCopy = max(c.maxPerCopy, len(cp.Segments))
		}
	}
	return c, nil
}

// call performs req and decodes a successful JSON body into out (when not nil). It returns
// the HTTP status, and an error naming what was being done for transport failures and
// error statuses.
func (h *ESForceMerge) call(ctx context.Context, what string, req esapi.Request, out any) (int, error) {
	res, err := req.Do(ctx, h.es)
	if err != nil {
		return 0, fmt.Errorf("elasticsearch %s: %w", what, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return res.StatusCode, fmt.Errorf("elasticsearch %s: read body: %w", what, err)
	}
	if res.IsError() {
		var e struct {
			Error struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error.Type != "" {
			return res.StatusCode, fmt.Errorf("elasticsearch %s: %d %s: %s", what, res.StatusCode, e.Error.Type, e.Error.Reason)
		}
		return res.StatusCode, fmt.Errorf("elasticsearch %s: %s: %.300s", what, res.Status(), body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return res.StatusCode, fmt.Errorf("elasticsearch %s: decode: %w", what, err)
		}
	}
	return res.StatusCode, nil
}

func esSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
