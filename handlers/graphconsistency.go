package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/neo4j/neo4j-go-driver/v5/neo4j"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/sqlident"
)

// GraphConsistencyKind is the job kind of GraphConsistency.
const GraphConsistencyKind = "graph_consistency"

// GraphConsistencyPolicy is graph_consistency's default run policy: the design's daily 05:00.
func GraphConsistencyPolicy() job.Spec {
	return job.Spec{Schedule: "0 0 5 * * *", Timeout: 30 * time.Minute,
		Misfire: job.MisfireFireOnce, MisfireBound: 6 * time.Hour}
}

// Neo4j database names: a letter, then letters, digits, dots and dashes, 3..63 in all.
var neo4jDatabasePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9.-]{2,62}$`)

// ValidateIdentifier accepts a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63): the
// column names, Neo4j labels and property names that end up inside queries.
func ValidateIdentifier(name string) error {
	if !sqlident.Plain(name) {
		return fmt.Errorf("%q is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63)", name)
	}
	return nil
}

// GraphConsistencyConfig configures the graph_consistency job.
type GraphConsistencyConfig struct {
	// Table holds the users in Postgres, "table" or "schema.table".
	Table string `yaml:"table" chat:"users.table" deprecated:"set chat_schema.users.table, shared by the jobs"`
	// IDColumn is the users' bigint key, the same value the graph stores in IDProperty.
	IDColumn string `yaml:"id_column" chat:"users.id" deprecated:"set chat_schema.users.id, shared by the jobs"`
	// DeletedAtColumn marks soft-deleted users (NULL = live). The graph holds live users
	// only, so rows with a value are left out of the count and the id comparison.
	DeletedAtColumn string `yaml:"deleted_at_column" chat:"users.deleted_at" deprecated:"set chat_schema.users.deleted_at, shared by the jobs"`
	// IncludeDeleted counts every row (for a platform that hard-deletes, or that keeps
	// deleted users in the graph); DeletedAtColumn is then ignored.
	IncludeDeleted bool `yaml:"include_deleted"`
	// Database is the Neo4j database; empty means the server's default.
	Database string `yaml:"database"`
	// Label of the user nodes.
	Label string `yaml:"label"`
	// IDProperty is the node property holding the user id (an integer).
	IDProperty string `yaml:"id_property"`
	// MaxDeviation: the run fails when |pg - graph| / max(pg, 1), or the ids found on one
	// side only divided the same way, is above this. Unset means 0.001 (0.1%); 0 tolerates
	// no difference at all.
	MaxDeviation *float64 `yaml:"max_deviation"`
	// ChunkSize is how many Postgres ids one chunk of the id comparison spans.
	ChunkSize int `yaml:"chunk_size"`
	// MaxSamples caps the ids listed for each side in the result.
	MaxSamples int `yaml:"max_samples"`
	// CountOnly skips the id comparison (two counts only).
	CountOnly bool `yaml:"count_only"`
}

// WithDefaults fills unset fields.
func (c GraphConsistencyConfig) WithDefaults() GraphConsistencyConfig {
	if c.Table == "" {
		c.Table = "users"
	}
	if c.IDColumn == "" {
		c.IDColumn = "id"
	}
	if c.DeletedAtColumn == "" {
		c.DeletedAtColumn = "deleted_at"
	}
	if c.Label == "" {
		c.Label = "User"
	}
	if c.IDProperty == "" {
		c.IDProperty = "id"
	}
	if c.MaxDeviation == nil {
		d := 0.001
		c.MaxDeviation = &d
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = 10000
	}
	if c.MaxSamples == 0 {
		c.MaxSamples = 20
	}
	return c
}

// Validate names the first bad key.
func (c GraphConsistencyConfig) Validate() error {
	if err := sqlident.ValidateTable(c.Table); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	for key, v := range map[string]string{"id_column": c.IDColumn, "deleted_at_column": c.DeletedAtColumn,
		"label": c.Label, "id_property": c.IDProperty} {
		if err := ValidateIdentifier(v); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	if c.Database != "" && !neo4jDatabasePattern.MatchString(c.Database) {
		return fmt.Errorf("database: %q is not a Neo4j database name", c.Database)
	}
	switch {
	case c.MaxDeviation != nil && (*c.MaxDeviation < 0 || *c.MaxDeviation > 1 || math.IsNaN(*c.MaxDeviation)):
		return fmt.Errorf("max_deviation: %v is outside 0..1", *c.MaxDeviation)
	case c.ChunkSize < 10 || c.ChunkSize > 1_000_000:
		return fmt.Errorf("chunk_size: %d is outside 10..1000000", c.ChunkSize)
	case c.MaxSamples < 1 || c.MaxSamples > 10_000:
		return fmt.Errorf("max_samples: %d is outside 1..10000", c.MaxSamples)
	}
	return nil
}

// GraphConsistencyArgs are the run parameters of graph_consistency; unset fields come from config.
type GraphConsistencyArgs struct {
	MaxDeviation *float64 `json:"max_deviation,omitempty"`
	MaxSamples   *int     `json:"max_samples,omitempty"`
	CountOnly    bool     `json:"count_only,omitempty"`
}

// Validate refuses out-of-range numbers.
func (a *GraphConsistencyArgs) Validate() error {
	if a.MaxDeviation != nil && (*a.MaxDeviation < 0 || *a.MaxDeviation > 1 || math.IsNaN(*a.MaxDeviation)) {
		return fmt.Errorf("max_deviation %v is outside 0..1", *a.MaxDeviation)
	}
	if a.MaxSamples != nil && (*a.MaxSamples < 0 || *a.MaxSamples > 10_000) {
		return fmt.Errorf("max_samples %d is outside 0..10000", *a.MaxSamples)
	}
	return nil
}

// GraphConsistency checks that the social graph in Neo4j holds the same users as Postgres:
// the two counts, and then which ids are on one side only. Ids are compared chunk by chunk
// (ChunkSize Postgres ids each) through a fingerprint computed on both sides (count and
// three sums of powers of the id modulo a prime), so only chunks that differ are read id by
// id: a nightly check of millions of users moves a few hundred numbers, not millions of ids.
//
// The two systems cannot be read in one snapshot: a user created while the check runs can
// show up as a one-off difference. The threshold exists for that.
type GraphConsistency struct {
	db  *pgxpool.Pool
	neo neo4j.DriverWithContext
	cfg GraphConsistencyConfig
	now func() time.Time
	log *slog.Logger
}

// NewGraphConsistency returns the graph_consistency handler. neo may be nil on a node whose
// config has no neo4j section: the handler is registered and its runs fail saying so.
func NewGraphConsistency(db *pgxpool.Pool, neo neo4j.DriverWithContext, cfg GraphConsistencyConfig,
	now func() time.Time, log *slog.Logger) (*GraphConsistency, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("graph_consistency config: %w", err)
	}
	return &GraphConsistency{db: db, neo: neo, cfg: cfg, now: now, log: log}, nil
}

// Kind implements Handler.
func (g *GraphConsistency) Kind() string { return GraphConsistencyKind }

// GraphConsistencyResult is the run's result JSON.
type GraphConsistencyResult struct {
	CheckedAt    time.Time `json:"checked_at"`
	Table        string    `json:"table"`
	Label        string    `json:"label"`
	PGCount      int64     `json:"pg_count"`
	GraphCount   int64     `json:"graph_count"`
	Deviation    float64   `json:"deviation"` // |pg - graph| / max(pg, 1)
	MaxDeviation float64   `json:"max_deviation"`
	// IDsCompared is false with count_only; the fields below are then empty.
	IDsCompared bool `json:"ids_compared"`
	// IDDeviation is (missing_in_graph + missing_in_pg) / max(pg, 1): equal counts can hide
	// a user missing on each side.
	IDDeviation      float64 `json:"id_deviation"`
	Chunks           int     `json:"chunks"`
	MismatchedChunks int     `json:"mismatched_chunks"`
	MissingInGraphN  int64   `json:"missing_in_graph_count"`
	MissingInPGN     int64   `json:"missing_in_pg_count"`
	MissingInGraph   []int64 `json:"missing_in_graph"` // up to max_samples ids, ascending
	MissingInPG      []int64 `json:"missing_in_pg"`
	DuplicateInGraph []int64 `json:"duplicate_in_graph,omitempty"` // ids held by more than one node
	// GraphNodesWithoutID counts nodes whose id property is missing or not an integer: they
	// count in graph_count but match no user.
	GraphNodesWithoutID int64 `json:"graph_nodes_without_id"`
	// GraphIDIndexed says whether Neo4j has an index on label(id_property); without one each
	// chunk scans every labelled node.
	GraphIDIndexed bool  `json:"graph_id_indexed"`
	DurationMS     int64 `json:"duration_ms"`
}

// The fingerprint's modulus: sums of ChunkSize (≤ 10^6) terms below 2^31 stay far from
// overflowing int64 in both Postgres and Cypher.
const fingerprintPrime = 2147483647

type fingerprint struct{ n, s1, s2, s3 int64 }

// Run implements Handler.
func (g *GraphConsistency) Run(ctx context.Context, run *job.Run[GraphConsistencyArgs]) (any, error) {
	if g.neo == nil {
		return nil, job.Discard("neo4j not configured",
			errors.New("this node's config has no neo4j.uri; graph_consistency cannot run here"))
	}
	start := time.Now()
	res := GraphConsistencyResult{CheckedAt: g.now().UTC(), Table: g.cfg.Table, Label: g.cfg.Label,
		MaxDeviation: *g.cfg.MaxDeviation, MissingInGraph: []int64{}, MissingInPG: []int64{}}
	if run.Args.MaxDeviation != nil {
		res.MaxDeviation = *run.Args.MaxDeviation
	}
	samples := g.cfg.MaxSamples
	if run.Args.MaxSamples != nil {
		samples = *run.Args.MaxSamples
	}
	var err error
	if err = g.db.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s`, g.table(), g.liveFilter())).
		Scan(&res.PGCount); err != nil {
		return nil, fmt.Errorf("count %s in postgres: %w", g.cfg.Table, err)
	}
	if res.GraphCount, err = g.neoInt(ctx, fmt.Sprintf("MATCH (n:%s) RETURN count(n)", g.label()), nil); err != nil {
		return res, fmt.Errorf("count :%s in neo4j: %w", g.cfg.Label, err)
	}
	res.Deviation = float64(absInt64(res.PGCount-res.GraphCount)) / float64(max(res.PGCount, 1))

	if !g.cfg.CountOnly && !run.Args.CountOnly {
		res.IDsCompared = true
		if err := g.compareIDs(ctx, &res, samples); err != nil {
			return res, err
		}
		res.IDDeviation = float64(res.MissingInGraphN+res.MissingInPGN) / float64(max(res.PGCount, 1))
	}
	res.DurationMS = time.Since(start).Milliseconds()
	g.log.InfoContext(ctx, "graph consistency", "pg_count", res.PGCount, "graph_count", res.GraphCount,
		"deviation", res.Deviation, "missing_in_graph", res.MissingInGraphN, "missing_in_pg", res.MissingInPGN)
	if res.Deviation > res.MaxDeviation || res.IDDeviation > res.MaxDeviation {
		// Discard, not retry: the check did its work and its result is the news. Measuring
		// again a few seconds later gives the same answer and only multiplies the alert.
		// The problem is this occurrence's deviation: the design wants an email on every daily
		// run that deviates, so the run key (one per occurrence, shared by its retries, the
		// nodes that saw it and its republishes) names it, not the error text, which would
		// fold tomorrow's deviation into today's alert window.
		return res, job.Discard("graph deviation", job.WithProblem(DeviationProblem(run.RunKey), fmt.Errorf(
			"%d users in postgres %s, %d :%s nodes in neo4j: deviation %.6f, id deviation %.6f, above %v; missing in graph %d %v, missing in postgres %d %v",
			res.PGCount, g.cfg.Table, res.GraphCount, g.cfg.Label, res.Deviation, res.IDDeviation, res.MaxDeviation,
			res.MissingInGraphN, res.MissingInGraph, res.MissingInPGN, res.MissingInPG)))
	}
	return res, nil
}

// DeviationProblem is the alert fingerprint of a deviation found by the run of runKey.
func DeviationProblem(runKey string) string { return "graph deviation in run " + runKey }

// compareIDs walks the Postgres ids in chunks of ChunkSize: [lo, hi] where hi is the
// ChunkSize-th live id from lo, and the last chunk runs to the largest int64 so graph nodes
// above every Postgres id are compared too. Chunks whose fingerprints differ are merged id
// by id.
func (g *GraphConsistency) compareIDs(ctx context.Context, res *GraphConsistencyResult, samples int) error {
	var err error
	if res.GraphNodesWithoutID, err = g.neoInt(ctx, fmt.Sprintf("MATCH (n:%s) WHERE NOT n.%s IS :: INTEGER NOT NULL RETURN count(n)",
		g.label(), g.prop()), nil); err != nil {
		return fmt.Errorf("count :%s nodes without an integer %s: %w", g.cfg.Label, g.cfg.IDProperty, err)
	}
	if res.GraphIDIndexed, err = g.indexed(ctx); err != nil {
		return err
	}
	if !res.GraphIDIndexed {
		g.log.WarnContext(ctx, "no neo4j index on the user id; every chunk scans all user nodes",
			"label", g.cfg.Label, "property", g.cfg.IDProperty)
	}
	pgChunk := fmt.Sprintf(`SELECT count(*), max(id),
			coalesce(sum(id %% $3), 0)::bigint,
			coalesce(sum(((id %% $3) * (id %% $3)) %% $3), 0)::bigint,
			coalesce(sum(((((id %% $3) * (id %% $3)) %% $3) * (id %% $3)) %% $3), 0)::bigint
		FROM (SELECT %s AS id FROM %s WHERE %s AND %s >= $1 ORDER BY %s LIMIT $2) chunk`,
		g.col(), g.table(), g.liveFilter(), g.col(), g.col())
	lo := int64(math.MinInt64)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var pg fingerprint
		var top *int64
		if err := g.db.QueryRow(ctx, pgChunk, lo, g.cfg.ChunkSize, fingerprintPrime).
			Scan(&pg.n, &top, &pg.s1, &pg.s2, &pg.s3); err != nil {
			return fmt.Errorf("fingerprint %s ids from %d: %w", g.cfg.Table, lo, err)
		}
		hi := int64(math.MaxInt64)
		last := pg.n < int64(g.cfg.ChunkSize) || *top == math.MaxInt64
		if !last {
			hi = *top
		}
		neo, err := g.neoFingerprint(ctx, lo, hi)
		if err != nil {
			return err
		}
		res.Chunks++
		if neo != pg {
			res.MismatchedChunks++
			if err := g.diffRange(ctx, lo, hi, res, samples); err != nil {
				return err
			}
		}
		if last {
			return nil
		}
		lo = hi + 1
	}
}

func (g *GraphConsistency) neoFingerprint(ctx context.Context, lo, hi int64) (fingerprint, error) {
	q := fmt.Sprintf(`MATCH (n:%s) WHERE n.%s >= $lo AND n.%s <= $hi AND n.%s IS :: INTEGER
		WITH n.%s %% $p AS r
		RETURN count(r) AS n, sum(r) AS s1, sum((r * r) %% $p) AS s2, sum((((r * r) %% $p) * r) %% $p) AS s3`,
		g.label(), g.prop(), g.prop(), g.prop(), g.prop())
	out, err := neo4j.ExecuteQuery(ctx, g.neo, q, map[string]any{"lo": lo, "hi": hi, "p": int64(fingerprintPrime)},
		neo4j.EagerResultTransformer, g.queryOpts()...)
	if err != nil {
		return fingerprint{}, fmt.Errorf("fingerprint :%s ids in [%d, %d]: %w", g.cfg.Label, lo, hi, err)
	}
	var f fingerprint
	rec := out.Records[0]
	for i, dst := range []*int64{&f.n, &f.s1, &f.s2, &f.s3} {
		v, ok := rec.Values[i].(int64)
		if !ok {
			return f, fmt.Errorf("fingerprint :%s ids in [%d, %d]: %s is %T, not an integer", g.cfg.Label, lo, hi, rec.Keys[i], rec.Values[i])
		}
		*dst = v
	}
	return f, nil
}

// diffRange merges the sorted ids of both sides in [lo, hi], streaming, and records every id
// present on one side only (counts in full, ids up to samples).
func (g *GraphConsistency) diffRange(ctx context.Context, lo, hi int64, res *GraphConsistencyResult, samples int) error {
	rows, err := g.db.Query(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE %s AND %s BETWEEN $1 AND $2 ORDER BY 1`,
		g.col(), g.table(), g.liveFilter(), g.col()), lo, hi)
	if err != nil {
		return fmt.Errorf("read %s ids in [%d, %d]: %w", g.cfg.Table, lo, hi, err)
	}
	defer rows.Close()
	session := g.neo.NewSession(ctx, neo4j.SessionConfig{AccessMode: neo4j.AccessModeRead, DatabaseName: g.cfg.Database})
	defer session.Close(ctx)
	graph, err := session.Run(ctx, fmt.Sprintf(`MATCH (n:%s) WHERE n.%s >= $lo AND n.%s <= $hi AND n.%s IS :: INTEGER
		RETURN n.%s AS id ORDER BY id`, g.label(), g.prop(), g.prop(), g.prop(), g.prop()), map[string]any{"lo": lo, "hi": hi})
	if err != nil {
		return fmt.Errorf("read :%s ids in [%d, %d]: %w", g.cfg.Label, lo, hi, err)
	}
	nextPG := func() (int64, bool, error) {
		if !rows.Next() {
			return 0, false, rows.Err()
		}
		var id int64
		return id, true, rows.Scan(&id)
	}
	prevGraph, havePrev := int64(0), false
	nextGraph := func() (int64, bool, error) {
		for graph.Next(ctx) {
			id, _ := graph.Record().Values[0].(int64)
			if havePrev && id == prevGraph {
				if len(res.DuplicateInGraph) < samples && (len(res.DuplicateInGraph) == 0 || res.DuplicateInGraph[len(res.DuplicateInGraph)-1] != id) {
					res.DuplicateInGraph = append(res.DuplicateInGraph, id)
				}
				continue
			}
			prevGraph, havePrev = id, true
			return id, true, nil
		}
		return 0, false, graph.Err()
	}
	missingInGraph := func(id int64) {
		res.MissingInGraphN++
		if len(res.MissingInGraph) < samples {
			res.MissingInGraph = append(res.MissingInGraph, id)
		}
	}
	missingInPG := func(id int64) {
		res.MissingInPGN++
		if len(res.MissingInPG) < samples {
			res.MissingInPG = append(res.MissingInPG, id)
		}
	}
	p, okP, err := nextPG()
	if err != nil {
		return fmt.Errorf("read %s ids: %w", g.cfg.Table, err)
	}
	n, okN, err := nextGraph()
	if err != nil {
		return fmt.Errorf("read :%s ids: %w", g.cfg.Label, err)
	}
	for okP || okN {
		var errP, errN error
		switch {
		case okP && (!okN || p < n):
			missingInGraph(p)
			p, okP, errP = nextPG()
		case okN && (!okP || n < p):
			missingInPG(n)
			n, okN, errN = nextGraph()
		default: // on both sides
			p, okP, errP = nextPG()
			n, okN, errN = nextGraph()
		}
		if errP != nil {
			return fmt.Errorf("read %s ids: %w", g.cfg.Table, errP)
		}
		if errN != nil {
			return fmt.Errorf("read :%s ids: %w", g.cfg.Label, errN)
		}
	}
	return nil
}

// indexed reports whether an online index covers label(id_property) alone or first.
func (g *GraphConsistency) indexed(ctx context.Context) (bool, error) {
	n, err := g.neoInt(ctx, `SHOW INDEXES YIELD labelsOrTypes, properties, state
		WHERE $label IN labelsOrTypes AND properties[0] = $prop AND state = 'ONLINE' RETURN count(*)`,
		map[string]any{"label": g.cfg.Label, "prop": g.cfg.IDProperty})
	if err != nil {
		return false, fmt.Errorf("list neo4j indexes: %w", err)
	}
	return n > 0, nil
}

func (g *GraphConsistency) neoInt(ctx context.Context, q string, params map[string]any) (int64, error) {
	out, err := neo4j.ExecuteQuery(ctx, g.neo, q, params, neo4j.EagerResultTransformer, g.queryOpts()...)
	if err != nil {
		return 0, err
	}
	if len(out.Records) != 1 || len(out.Records[0].Values) != 1 {
		return 0, fmt.Errorf("want one value, got %d records", len(out.Records))
	}
	v, ok := out.Records[0].Values[0].(int64)
	if !ok {
		return 0, fmt.Errorf("want an integer, got %T", out.Records[0].Values[0])
	}
	return v, nil
}

func (g *GraphConsistency) queryOpts() []neo4j.ExecuteQueryConfigurationOption {
	opts := []neo4j.ExecuteQueryConfigurationOption{neo4j.ExecuteQueryWithReadersRouting()}
	if g.cfg.Database != "" {
		opts = append(opts, neo4j.ExecuteQueryWithDatabase(g.cfg.Database))
	}
	return opts
}

// The names below passed Validate (plain identifiers), so quoting cannot be escaped.
func (g *GraphConsistency) table() string {
	return pgx.Identifier(strings.Split(g.cfg.Table, ".")).Sanitize()
}
func (g *GraphConsistency) col() string   { return pgx.Identifier{g.cfg.IDColumn}.Sanitize() }
func (g *GraphConsistency) label() string { return "`" + g.cfg.Label + "`" }
func (g *GraphConsistency) prop() string  { return "`" + g.cfg.IDProperty + "`" }

func (g *GraphConsistency) liveFilter() string {
	if g.cfg.IncludeDeleted {
		return "true"
	}
	return pgx.Identifier{g.cfg.DeletedAtColumn}.Sanitize() + " IS NULL"
}

func absInt64(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
