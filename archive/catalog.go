package archive

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/chatplat/job-service/sqlident"
)

// ErrRefused is wrapped by errors that retrying cannot fix: a table that does not exist or
// is not range-partitioned by time. The handler turns them into job.Discard.
var ErrRefused = errors.New("refused")

// querier is what catalog lookups need: a pool, a connection or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// parent is a range-partitioned table with one time key.
type parent struct {
	Schema, Name string
	KeyColumn    string
	KeyType      string
	HasDefault   bool
}

func (p parent) ident() string { return pgx.Identifier{p.Schema, p.Name}.Sanitize() }

// lookupParent resolves table ("t" or "s.t") and refuses anything that is not
// range-partitioned on one date or timestamp column.
func lookupParent(ctx context.Context, q querier, table string) (parent, error) {
	var p parent
	if err := sqlident.ValidateTable(table); err != nil {
		return p, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	schema, name, qualified := strings.Cut(table, ".")
	if !qualified {
		name, schema = schema, ""
	}
	var strategy string
	var nattrs int
	var hasDefault bool
	err := q.QueryRow(ctx, `
		SELECT n.nspname, c.relname, pt.partstrat::text, pt.partnatts, COALESCE(a.attname, ''),
			COALESCE(format_type(a.atttypid, a.atttypmod), ''), pt.partdefid <> 0
		FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_partitioned_table pt ON pt.partrelid = c.oid
		LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = pt.partattrs[0]
		WHERE c.relname = $1 AND n.nspname = COALESCE(NULLIF($2, ''), current_schema())`,
		name, schema).Scan(&p.Schema, &p.Name, &strategy, &nattrs, &p.KeyColumn, &p.KeyType, &hasDefault)
	if errors.Is(err, pgx.ErrNoRows) {
		var exists bool
		if err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
			return p, fmt.Errorf("look up %s: %w", table, err)
		}
		if !exists {
			return p, fmt.Errorf("%w: table %s does not exist", ErrRefused, table)
		}
		return p, fmt.Errorf("%w: table %s is not a partitioned table", ErrRefused, table)
	}
	if err != nil {
		return p, fmt.Errorf("look up %s: %w", table, err)
	}
	if strategy != "r" || nattrs != 1 || p.KeyColumn == "" {
		return p, fmt.Errorf("%w: table %s is not range-partitioned on one column", ErrRefused, table)
	}
	switch p.KeyType {
	case "timestamp with time zone", "timestamp without time zone", "date":
	default:
		return p, fmt.Errorf("%w: table %s is partitioned on %s of type %s, not a time", ErrRefused, table, p.KeyColumn, p.KeyType)
	}
	p.HasDefault = hasDefault
	return p, nil
}

// partition is one child of a parent, as the catalog shows it.
type partition struct {
	Schema, Name  string
	Bound         string // pg_get_expr of relpartbound
	Partitioned   bool   // itself partitioned: never archived
	DetachPending bool
	EstRows       int64
	Bytes         int64
	From, To      string // literals of a FROM (..) TO (..) bound
}

var rangeBound = regexp.MustCompile(`^FOR VALUES FROM \('([^']*)'\) TO \('([^']*)'\)$`)

// listPartitions returns the attached (or detach-pending) children of p.
func listPartitions(ctx context.Context, q querier, p parent) ([]partition, error) {
	rows, err := q.Query(ctx, `
		SELECT n.nspname, c.relname, pg_get_expr(c.relpartbound, c.oid), c.relkind = 'p', i.inhdetachpending,
			GREATEST(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid)
		FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE i.inhparent = $1::regclass
		ORDER BY c.relname`, p.ident())
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", p.ident(), err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (partition, error) {
		var c partition
		err := r.Scan(&c.Schema, &c.Name, &c.Bound, &c.Partitioned, &c.DetachPending, &c.EstRows, &c.Bytes)
		if m := rangeBound.FindStringSubmatch(c.Bound); m != nil {
			c.From, c.To = m[1], m[2]
		}
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", p.ident(), err)
	}
	return out, nil
}

// parseBound reads a bound literal of the key type; timestamps without zone and dates are
// read in loc.
func parseBound(keyType, lit string, loc *time.Location) (time.Time, error) {
	var layouts []string
	switch keyType {
	case "date":
		layouts = []string{time.DateOnly}
	case "timestamp without time zone":
		layouts = []string{"2006-01-02 15:04:05"}
	default:
		layouts = []string{"2006-01-02 15:04:05Z07", "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05Z07:00:00"}
	}
	for _, l := range layouts {
		if t, err := time.ParseInLocation(l, lit, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("bound %q is not a %s this job reads", lit, keyType)
}

// column is one archived column, in the object's order.
type column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// tableColumns lists the columns COPY writes: not dropped, not generated.
func tableColumns(ctx context.Context, q querier, schema, table string) ([]column, error) {
	rows, err := q.Query(ctx, `
		SELECT a.attname, format_type(a.atttypid, a.atttypmod)
		FROM pg_attribute a
		WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		ORDER BY a.attnum`, pgx.Identifier{schema, table}.Sanitize())
	if err != nil {
		return nil, fmt.Errorf("columns of %s.%s: %w", schema, table, err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowToStructByPos[column])
	if err != nil {
		return nil, fmt.Errorf("columns of %s.%s: %w", schema, table, err)
	}
	return cols, nil
}

func columnList(cols []column) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = pgx.Identifier{c.Name}.Sanitize()
	}
	return strings.Join(names, ", ")
}

// tableState says whether schema.name exists and, if so, whether it is (still) a partition
// of p.
func tableState(ctx context.Context, q querier, p parent, schema, name string) (exists, attached, pending bool, err error) {
	err = q.QueryRow(ctx, `
		SELECT true,
			EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid AND i.inhparent = $3::regclass),
			EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid AND i.inhdetachpending)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2`, schema, name, p.ident()).Scan(&exists, &attached, &pending)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, false, nil
	}
	if err != nil {
		return false, false, false, fmt.Errorf("look up %s.%s: %w", schema, name, err)
	}
	return exists, attached, pending, nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// sessionSettings pin (for one transaction: SET LOCAL, so pooled connections stay clean)
// every setting that changes COPY's text of a value, so the export, the
// re-check before drop and the check after a restore print the same bytes for the same rows.
// synchronize_seqscans off keeps a large table's rows in one order between reads (the
// checksum does not need it; analysts reading the file like it).
var sessionSettings = []string{
	`SET LOCAL TimeZone = 'UTC'`,
	`SET LOCAL DateStyle = 'ISO, MDY'`,
	`SET LOCAL IntervalStyle = 'postgres'`,
	`SET LOCAL extra_float_digits = 1`,
	`SET LOCAL bytea_output = 'hex'`,
	`SET LOCAL synchronize_seqscans = off`,
}

func pinSession(ctx context.Context, q querier) error {
	for _, s := range sessionSettings {
		if _, err := q.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}
