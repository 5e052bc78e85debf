package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/sqlident"
)

// PartitionKind is the job kind of Partition.
const PartitionKind = "pg_partition"

// PartitionPolicy is pg_partition's default run policy: the design's daily 02:00. Partitions
// are made months ahead, so a missed day is caught up within 24 hours.
func PartitionPolicy() job.Spec {
	return job.Spec{Schedule: "0 0 2 * * *", Timeout: 10 * time.Minute,
		Misfire: job.MisfireFireOnce, MisfireBound: 24 * time.Hour}
}

// PartitionConfig configures the pg_partition job.
type PartitionConfig struct {
	// Tables are the range-partitioned parents, "table" or "schema.table".
	Tables []string `yaml:"tables"`
	// Premake is how many months ahead of the current one must exist.
	Premake int `yaml:"premake"`
	// LockTimeout bounds how long one DDL statement may wait for the parent's lock, so a busy
	// table never stalls its writers behind us for long.
	LockTimeout time.Duration `yaml:"lock_timeout"`
	// LockRetries is how often a lock timeout is retried, with doubling backoff.
	LockRetries int `yaml:"lock_retries"`
	// TimeZone whose month boundaries the partitions follow. Unset, the job follows the bounds
	// of the existing partitions (the newest one's UTC offset; UTC when there are none). Set, it
	// must agree with every existing bound, or the run creates nothing and fails: a month drawn
	// in another zone would leave a hole of hours between two partitions.
	TimeZone string `yaml:"time_zone"`
}

// WithDefaults fills unset fields.
func (c PartitionConfig) WithDefaults() PartitionConfig {
	if len(c.Tables) == 0 {
		c.Tables = []string{"chat_messages", "chat_inbox"}
	}
	if c.Premake == 0 {
		c.Premake = 3
	}
	if c.LockTimeout == 0 {
		c.LockTimeout = 2 * time.Second
	}
	if c.LockRetries == 0 {
		c.LockRetries = 5
	}
	return c
}

// Validate names the first bad key.
func (c PartitionConfig) Validate() error {
	for _, t := range c.Tables {
		if err := sqlident.ValidateTable(t); err != nil {
			return fmt.Errorf("tables: %w", err)
		}
		if len(t) > 55 { // leaves room for the _YYYY_MM suffix within 63 bytes
			return fmt.Errorf("tables: %q is too long for monthly partition names", t)
		}
	}
	if c.Premake < 0 || c.Premake > 36 {
		return fmt.Errorf("premake: %d is outside 0..36", c.Premake)
	}
	if c.LockTimeout < 10*time.Millisecond {
		return fmt.Errorf("lock_timeout: %s is below 10ms", c.LockTimeout)
	}
	if c.TimeZone != "" {
		if _, err := time.LoadLocation(c.TimeZone); err != nil {
			return fmt.Errorf("time_zone: %w", err)
		}
	}
	return nil
}

// CheckSpec refuses scheduled params whose tables are not configured ones: params only narrow.
func (c PartitionConfig) CheckSpec(s job.Spec) error {
	if args, err := job.DecodeArgs[PartitionArgs](s.ParamsJSON()); err == nil { // decode errors are reported before
		if err := narrowTables(args.Tables, c.Tables); err != nil {
			return fmt.Errorf("params.%w", err)
		}
	}
	return nil
}

// PartitionArgs are the run parameters of pg_partition; unset fields come from config.
type PartitionArgs struct {
	Tables  []string `json:"tables,omitempty"`
	Premake *int     `json:"premake,omitempty"`
}

// Validate refuses table names that are not plain identifiers.
func (a *PartitionArgs) Validate() error {
	for _, t := range a.Tables {
		if err := sqlident.ValidateTable(t); err != nil {
			return err
		}
	}
	if a.Premake != nil && (*a.Premake < 0 || *a.Premake > 36) {
		return fmt.Errorf("premake %d is outside 0..36", *a.Premake)
	}
	return nil
}

// Partition keeps monthly partitions created ahead of time, so writes on the first day of a
// month never fail for want of a partition. It is the most critical job: it runs idempotently
// and reports loudly when it cannot do its work.
type Partition struct {
	db  *pgxpool.Pool
	cfg PartitionConfig
	loc *time.Location
	now func() time.Time
	log *slog.Logger
}

// NewPartition returns the pg_partition handler. cfg must have passed Validate.
func NewPartition(db *pgxpool.Pool, cfg PartitionConfig, now func() time.Time, log *slog.Logger) (*Partition, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pg_partition config: %w", err)
	}
	var loc *time.Location // nil: follow the existing partitions
	if cfg.TimeZone != "" {
		loc, _ = time.LoadLocation(cfg.TimeZone)
	}
	return &Partition{db: db, cfg: cfg, loc: loc, now: now, log: log}, nil
}

// Kind implements Handler.
func (p *Partition) Kind() string { return PartitionKind }

// PartitionResult is the run's result JSON.
type PartitionResult struct {
	Tables []TablePartitions `json:"tables"`
}

// TablePartitions is what happened to one parent table.
type TablePartitions struct {
	Table          string           `json:"table"`
	Created        []string         `json:"created"`
	Present        []string         `json:"present"`
	StuckInDefault []StuckInDefault `json:"stuck_in_default,omitempty"`
	Error          string           `json:"error,omitempty"`
}

// StuckInDefault reports rows of the DEFAULT partition that fall in a month that should get
// its own partition: attaching would fail, and someone must move them first.
type StuckInDefault struct {
	Partition        string    `json:"partition"`
	DefaultPartition string    `json:"default_partition"`
	From             time.Time `json:"from"`
	To               time.Time `json:"to"`
	Rows             int64     `json:"rows"`
}

// Run implements Handler.
func (p *Partition) Run(ctx context.Context, run *job.Run[PartitionArgs]) (any, error) {
	tables, premake := p.cfg.Tables, p.cfg.Premake
	if err := narrowTables(run.Args.Tables, p.cfg.Tables); err != nil {
		return PartitionResult{}, job.Discard("params outside config", err)
	}
	if len(run.Args.Tables) > 0 {
		tables = run.Args.Tables
	}
	if run.Args.Premake != nil {
		premake = *run.Args.Premake
	}
	now := p.now()
	res := PartitionResult{}
	var problems []string
	permanent := true
	for _, table := range tables {
		tp, err := p.ensureTable(ctx, table, now, premake)
		if err != nil {
			tp.Error = err.Error()
			problems = append(problems, fmt.Sprintf("%s: %v", table, err))
			if !job.IsDiscard(err) {
				permanent = false
			}
		}
		for _, s := range tp.StuckInDefault {
			problems = append(problems, fmt.Sprintf("%s: %d rows in %s belong to %s [%s, %s)", table, s.Rows,
				s.DefaultPartition, s.Partition, s.From.Format(time.DateOnly), s.To.Format(time.DateOnly)))
		}
		res.Tables = append(res.Tables, tp)
	}
	if len(problems) == 0 {
		return res, nil
	}
	err := errors.New(strings.Join(problems, "; "))
	if permanent {
		// Rows stuck in a default partition or a missing table do not fix themselves on retry.
		return res, job.Discard("partitions missing", err)
	}
	return res, err
}

type parentInfo struct {
	schema, name  string
	keyColumn     string
	keyType       string
	defaultSchema string
	defaultName   string
	hasDefault    bool
}

func (p *Partition) ensureTable(ctx context.Context, table string, now time.Time, premake int) (TablePartitions, error) {
	tp := TablePartitions{Table: table, Created: []string{}, Present: []string{}}
	parent, err := p.lookupParent(ctx, table)
	if err != nil {
		return tp, err
	}
	existing, err := p.existingBounds(ctx, parent)
	if err != nil {
		return tp, err
	}
	loc, err := p.monthZone(parent, existing)
	if err != nil {
		return tp, err
	}
	first := monthStart(now.In(loc))
	if p.loc != nil && loc == time.UTC {
		// Wall-clock bounds: the configured zone still says which month it is now.
		n := now.In(p.loc)
		first = time.Date(n.Year(), n.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	p.log.InfoContext(ctx, "checking partitions", "table", table, "existing", len(existing), "time_zone", loc.String(),
		"from", first.Format(time.DateOnly), "months", premake+1)
	for i := 0; i <= premake; i++ {
		from := first.AddDate(0, i, 0)
		to := first.AddDate(0, i+1, 0)
		if b, ok := covering(existing, from, to); ok {
			if !b.from.Equal(from) || !b.to.Equal(to) {
				return tp, job.Discard("bounds clash", fmt.Errorf("month [%s, %s) overlaps partition %s [%s, %s)",
					from.Format(time.RFC3339), to.Format(time.RFC3339), b.name, b.from.Format(time.RFC3339), b.to.Format(time.RFC3339)))
			}
			tp.Present = append(tp.Present, b.name)
			continue
		}
		child := fmt.Sprintf("%s_%04d_%02d", parent.name, from.Year(), int(from.Month()))
		created, stuck, err := p.ensureMonth(ctx, parent, child, from, to)
		switch {
		case err != nil:
			return tp, fmt.Errorf("partition %s: %w", child, err)
		case stuck != nil:
			tp.StuckInDefault = append(tp.StuckInDefault, *stuck)
		case created:
			tp.Created = append(tp.Created, child)
			p.log.InfoContext(ctx, "created partition", "table", table, "partition", child,
				"from", from.Format(time.RFC3339), "to", to.Format(time.RFC3339))
		default:
			tp.Present = append(tp.Present, child)
		}
	}
	p.log.InfoContext(ctx, "partitions ready", "table", table, "created", len(tp.Created), "present", len(tp.Present),
		"stuck_in_default", len(tp.StuckInDefault))
	return tp, nil
}

func (p *Partition) lookupParent(ctx context.Context, table string) (parentInfo, error) {
	var info parentInfo
	schema, name, qualified := strings.Cut(table, ".")
	if !qualified {
		name, schema = schema, ""
	}
	var strategy string
	var nattrs int
	var defSchema, defName *string
	err := p.db.QueryRow(ctx, `
		SELECT n.nspname, c.relname, pt.partstrat::text, pt.partnatts, a.attname, format_type(a.atttypid, a.atttypmod),
			dn.nspname, d.relname
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_partitioned_table pt ON pt.partrelid = c.oid
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = pt.partattrs[0]
		LEFT JOIN pg_class d ON d.oid = pt.partdefid
		LEFT JOIN pg_namespace dn ON dn.oid = d.relnamespace
		WHERE c.relname = $1 AND n.nspname = COALESCE(NULLIF($2, ''), current_schema())`,
		name, schema).Scan(&info.schema, &info.name, &strategy, &nattrs, &info.keyColumn, &info.keyType, &defSchema, &defName)
	if errors.Is(err, pgx.ErrNoRows) {
		var exists bool
		if err := p.db.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
			return info, fmt.Errorf("look up %s: %w", table, err)
		}
		if !exists {
			return info, job.Discard("missing table", fmt.Errorf("table %s does not exist", table))
		}
		return info, job.Discard("not partitioned", fmt.Errorf("table %s is not a partitioned table", table))
	}
	if err != nil {
		return info, fmt.Errorf("look up %s: %w", table, err)
	}
	if strategy != "r" || nattrs != 1 {
		return info, job.Discard("not range", fmt.Errorf("table %s is not range-partitioned on one column", table))
	}
	switch info.keyType {
	case "timestamp with time zone", "timestamp without time zone", "date":
	default:
		return info, job.Discard("key type", fmt.Errorf("table %s is partitioned on %s of type %s, not a time", table, info.keyColumn, info.keyType))
	}
	if defName != nil {
		info.hasDefault, info.defaultSchema, info.defaultName = true, *defSchema, *defName
	}
	return info, nil
}

// ensureMonth makes sure child covers [from, to). It reports whether it created it, or the
// rows that block it in the default partition.
func (p *Partition) ensureMonth(ctx context.Context, parent parentInfo, child string, from, to time.Time) (bool, *StuckInDefault, error) {
	var attachedTo *string
	var exists bool
	err := p.db.QueryRow(ctx, `
		SELECT true, (SELECT pc.relname FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent WHERE i.inhrelid = c.oid)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2`, parent.schema, child).Scan(&exists, &attachedTo)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, nil, fmt.Errorf("look up: %w", err)
	}
	if exists && attachedTo != nil {
		// A partition of this parent with the month's exact bounds was found by bounds before;
		// one of the month's name covering something else is a clash, not the month.
		return false, nil, job.Discard("name clash", fmt.Errorf("%s exists as a partition of %s with other bounds", child, *attachedTo))
	}
	var stuck *StuckInDefault
	err = p.withLockRetry(ctx, func() error {
		var err error
		stuck, err = p.createAndAttach(ctx, parent, child, exists, from, to)
		return err
	})
	if err != nil || stuck != nil {
		return false, stuck, err
	}
	return true, nil, nil
}

// createAndAttach builds the child with LIKE and attaches it, rather than CREATE ... PARTITION
// OF: ATTACH needs only SHARE UPDATE EXCLUSIVE on the parent, so readers and writers of the
// chat tables keep going while it runs.
//
// Rows of the default partition inside [from, to) would make ATTACH fail; they are counted
// first, in the same transaction and under the same lock timeout, and reported instead.
func (p *Partition) createAndAttach(ctx context.Context, parent parentInfo, child string, exists bool, from, to time.Time) (*StuckInDefault, error) {
	tx, err := p.db.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`,
		fmt.Sprintf("%dms", p.cfg.LockTimeout.Milliseconds())); err != nil {
		return nil, fmt.Errorf("set lock_timeout: %w", err)
	}
	if parent.hasDefault {
		var n int64
		key := pgx.Identifier{parent.keyColumn}.Sanitize()
		q := fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s >= $1 AND %s < $2`,
			pgx.Identifier{parent.defaultSchema, parent.defaultName}.Sanitize(), key, key)
		if err := tx.QueryRow(ctx, q, p.boundValue(parent, from), p.boundValue(parent, to)).Scan(&n); err != nil {
			return nil, fmt.Errorf("count rows in default partition: %w", err)
		}
		if n > 0 {
			return &StuckInDefault{Partition: child, DefaultPartition: parent.defaultName, From: from, To: to, Rows: n}, nil
		}
	}
	parentID := pgx.Identifier{parent.schema, parent.name}.Sanitize()
	childID := pgx.Identifier{parent.schema, child}.Sanitize()
	if !exists {
		if _, err := tx.Exec(ctx, fmt.Sprintf(
			`CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)`,
			childID, parentID)); err != nil {
			return nil, fmt.Errorf("create: %w", err)
		}
	}
	// DDL takes no placeholders; the bounds are literals we formatted from time values.
	if _, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%s) TO (%s)`,
		parentID, childID, quoteLiteral(p.boundLiteral(parent, from)), quoteLiteral(p.boundLiteral(parent, to)))); err != nil {
		return nil, fmt.Errorf("attach: %w", err)
	}
	return nil, tx.Commit(ctx)
}

func (p *Partition) withLockRetry(ctx context.Context, fn func() error) error {
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := fn()
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55P03" || attempt >= p.cfg.LockRetries {
			return err
		}
		p.log.WarnContext(ctx, "lock timeout, retrying", "attempt", attempt+1, "backoff", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (after lock timeout: %v)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

func (p *Partition) boundValue(parent parentInfo, t time.Time) any {
	if parent.keyType == "timestamp with time zone" {
		return t
	}
	return p.boundLiteral(parent, t) // wall-clock text; Postgres casts it to the column type
}

func (p *Partition) boundLiteral(parent parentInfo, t time.Time) string {
	switch parent.keyType {
	case "date":
		return t.Format(time.DateOnly)
	case "timestamp without time zone":
		return t.Format("2006-01-02 15:04:05")
	default:
		return t.Format("2006-01-02 15:04:05-07:00")
	}
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func monthStart(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, t.Location())
}
