package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// State is a manifest row's step.
type State string

// The states of a partition's move, in order, and the two that stop it.
const (
	StateExporting State = "exporting"
	StateExported  State = "exported"
	StateVerified  State = "verified"
	StateDetached  State = "detached"
	StateDropped   State = "dropped"
	StateRestored  State = "restored"
	StateConflict  State = "conflict"
)

// Format is the object format: COPY's CSV with a header line, gzip-compressed.
const Format = "csv+gzip"

// Entry is one row of the partition_archives manifest.
type Entry struct {
	ID              int64      `json:"id"`
	ParentSchema    string     `json:"parent_schema"`
	ParentTable     string     `json:"parent_table"`
	Partition       string     `json:"partition"`
	KeyColumn       string     `json:"key_column"`
	KeyType         string     `json:"key_type"`
	RangeFrom       string     `json:"range_from"`
	RangeTo         string     `json:"range_to"`
	Columns         []column   `json:"columns"`
	State           State      `json:"state"`
	Bucket          string     `json:"bucket"`
	ObjectKey       string     `json:"object_key"`
	Format          string     `json:"format"`
	Rows            *int64     `json:"rows,omitempty"`
	RawBytes        *int64     `json:"raw_bytes,omitempty"`
	Bytes           *int64     `json:"bytes,omitempty"`
	ContentChecksum string     `json:"content_checksum,omitempty"`
	ObjectSHA256    string     `json:"object_sha256,omitempty"`
	RunID           *int64     `json:"run_id,omitempty"`
	Attempts        int        `json:"attempts"`
	Error           string     `json:"error,omitempty"`
	RestoredAs      string     `json:"restored_as,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	UpdatedAt       time.Time  `json:"updated_at"`
	ExportedAt      *time.Time `json:"exported_at,omitempty"`
	VerifiedAt      *time.Time `json:"verified_at,omitempty"`
	DetachedAt      *time.Time `json:"detached_at,omitempty"`
	DroppedAt       *time.Time `json:"dropped_at,omitempty"`
	RestoredAt      *time.Time `json:"restored_at,omitempty"`
}

// Name is schema.partition.
func (e *Entry) Name() string { return e.ParentSchema + "." + e.Partition }

func (e *Entry) ident() string { return pgx.Identifier{e.ParentSchema, e.Partition}.Sanitize() }

const entryColumns = `id, parent_schema, parent_table, partition_name, key_column, key_type, range_from, range_to,
	columns, state, bucket, object_key, format, rows, raw_bytes, bytes, COALESCE(content_checksum, ''),
	COALESCE(object_sha256, ''), run_id, attempts, error, restored_as, created_at, updated_at, exported_at,
	verified_at, detached_at, dropped_at, restored_at`

func scanEntry(row pgx.Row) (*Entry, error) {
	var e Entry
	var cols []byte
	err := row.Scan(&e.ID, &e.ParentSchema, &e.ParentTable, &e.Partition, &e.KeyColumn, &e.KeyType, &e.RangeFrom,
		&e.RangeTo, &cols, &e.State, &e.Bucket, &e.ObjectKey, &e.Format, &e.Rows, &e.RawBytes, &e.Bytes,
		&e.ContentChecksum, &e.ObjectSHA256, &e.RunID, &e.Attempts, &e.Error, &e.RestoredAs, &e.CreatedAt,
		&e.UpdatedAt, &e.ExportedAt, &e.VerifiedAt, &e.DetachedAt, &e.DroppedAt, &e.RestoredAt)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(cols, &e.Columns); err != nil {
		return nil, fmt.Errorf("manifest %d columns: %w", e.ID, err)
	}
	return &e, nil
}

// claimEntry returns the manifest row of a partition, creating it in state exporting with its
// object key when there is none. An existing row keeps its key: a partition is only ever
// exported into one object.
func claimEntry(ctx context.Context, q querier, e *Entry) (*Entry, error) {
	cols, err := json.Marshal(e.Columns)
	if err != nil {
		return nil, err
	}
	_, err = q.Exec(ctx, `
		INSERT INTO partition_archives (parent_schema, parent_table, partition_name, key_column, key_type,
			range_from, range_to, columns, state, bucket, object_key, format, run_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'exporting', $9, $10, $11, $12)
		ON CONFLICT (parent_schema, parent_table, partition_name) DO NOTHING`,
		e.ParentSchema, e.ParentTable, e.Partition, e.KeyColumn, e.KeyType, e.RangeFrom, e.RangeTo, cols,
		e.Bucket, e.ObjectKey, e.Format, e.RunID)
	if err != nil {
		return nil, fmt.Errorf("record %s in manifest: %w", e.Name(), err)
	}
	return getEntry(ctx, q, e.ParentSchema, e.ParentTable, e.Partition)
}

// ErrNoEntry: the manifest has no row for the partition.
var ErrNoEntry = errors.New("not in the archive manifest")

func getEntry(ctx context.Context, q querier, schema, table, part string) (*Entry, error) {
	e, err := scanEntry(q.QueryRow(ctx, `SELECT `+entryColumns+` FROM partition_archives
		WHERE parent_schema = $1 AND parent_table = $2 AND partition_name = $3`, schema, table, part))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%s.%s partition %s: %w", schema, table, part, ErrNoEntry)
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest of %s.%s: %w", schema, part, err)
	}
	return e, nil
}

// unfinished lists a parent's rows whose move a previous run left part-way, oldest first.
func unfinished(ctx context.Context, q querier, p parent, drop bool) ([]*Entry, error) {
	states := []string{string(StateExporting), string(StateExported), string(StateVerified)}
	if drop {
		states = append(states, string(StateDetached))
	}
	return queryEntries(ctx, q, `WHERE parent_schema = $1 AND parent_table = $2 AND state = ANY($3)
		ORDER BY range_from, id`, p.Schema, p.Name, states)
}

func queryEntries(ctx context.Context, q querier, where string, args ...any) ([]*Entry, error) {
	rows, err := q.Query(ctx, `SELECT `+entryColumns+` FROM partition_archives `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	defer rows.Close()
	var out []*Entry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return out, nil
}

// ListFilter narrows List.
type ListFilter struct {
	Table string // parent table name, any schema; empty: all
	State State  // empty: all
	Limit int    // default 500
}

// List returns manifest rows, newest partitions first.
func List(ctx context.Context, q querier, f ListFilter) ([]*Entry, error) {
	if f.Limit <= 0 {
		f.Limit = 500
	}
	return queryEntries(ctx, q, `WHERE ($1 = '' OR parent_table = $1) AND ($2 = '' OR state = $2)
		ORDER BY parent_table, range_from DESC, id DESC LIMIT $3`, f.Table, string(f.State), f.Limit)
}

// setState moves e to state with the given column updates (a fixed set, named by the caller).
func setState(ctx context.Context, q querier, e *Entry, to State, errText string) error {
	var stamp string
	switch to {
	case StateExported:
		stamp = ", exported_at = now()"
	case StateVerified:
		stamp = ", verified_at = now()"
	case StateDetached:
		stamp = ", detached_at = now()"
	case StateDropped:
		stamp = ", dropped_at = now()"
	case StateRestored:
		stamp = ", restored_at = now()"
	}
	tag, err := q.Exec(ctx, `UPDATE partition_archives SET state = $2, error = $3, updated_at = now()`+stamp+`
		WHERE id = $1 AND state = $4`, e.ID, to, errText, e.State)
	if err != nil {
		return fmt.Errorf("manifest %s: %s -> %s: %w", e.Name(), e.State, to, err)
	}
	if tag.RowsAffected() != 1 {
		// Another run moved it meanwhile; the caller re-reads rather than step on it.
		return fmt.Errorf("manifest %s: %s -> %s: %w", e.Name(), e.State, to, errMoved)
	}
	e.State, e.Error = to, errText
	return nil
}

var errMoved = errors.New("row moved by another run")

func recordExport(ctx context.Context, q querier, e *Entry, s exportStats) error {
	tag, err := q.Exec(ctx, `UPDATE partition_archives SET state = 'exported', rows = $2, raw_bytes = $3, bytes = $4,
		content_checksum = $5, object_sha256 = $6, attempts = attempts + 1, error = '', exported_at = now(),
		updated_at = now() WHERE id = $1 AND state = 'exporting'`,
		e.ID, s.Rows, s.RawBytes, s.Bytes, s.Checksum, s.ObjectSHA256)
	if err != nil {
		return fmt.Errorf("manifest %s: record export: %w", e.Name(), err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("manifest %s: record export: %w", e.Name(), errMoved)
	}
	e.State, e.Error = StateExported, ""
	e.Rows, e.RawBytes, e.Bytes = &s.Rows, &s.RawBytes, &s.Bytes
	e.ContentChecksum, e.ObjectSHA256 = s.Checksum, s.ObjectSHA256
	e.Attempts++
	return nil
}
