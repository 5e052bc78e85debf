package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
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
	ID              int64    `json:"id"`
	ParentSchema    string   `json:"parent_schema"`
	ParentTable     string   `json:"parent_table"`
	Partition       string   `json:"partition"`
	KeyColumn       string   `json:"key_column"`
	KeyType         string   `json:"key_type"`
	RangeFrom       string   `json:"range_from"`
	RangeTo         string   `json:"range_to"`
	Columns         []column `json:"columns"`
	State           State    `json:"state"`
	Bucket          string   `json:"bucket"`
	ObjectKey       string   `json:"object_key"`
	Format          string   `json:"format"`
	Rows            *int64   `json:"rows,omitempty"`
	RawBytes        *int64   `json:"raw_bytes,omitempty"`
	Bytes           *int64   `json:"bytes,omitempty"`
	ContentChecksum string   `json:"content_checksum,omitempty"`
	ObjectSHA256    string   `json:"object_sha256,omitempty"`
	// ObjectETag is the object's ETag when its read-back was verified: the drop step compares
	// a fresh HEAD with it. Empty on rows verified by an older release.
	ObjectETag string     `json:"object_etag,omitempty"`
	RunID      *int64     `json:"run_id,omitempty"`
	Attempts   int        `json:"attempts"`
	Error      string     `json:"error,omitempty"`
	RestoredAs string     `json:"restored_as,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	ExportedAt *time.Time `json:"exported_at,omitempty"`
	VerifiedAt *time.Time `json:"verified_at,omitempty"`
	DetachedAt *time.Time `json:"detached_at,omitempty"`
	DroppedAt  *time.Time `json:"dropped_at,omitempty"`
	RestoredAt *time.Time `json:"restored_at,omitempty"`

	// claimedNow: this run made the row (claimEntry), so no earlier export of it can be running.
	claimedNow bool
}

// Name is schema.partition.
func (e *Entry) Name() string { return e.ParentSchema + "." + e.Partition }

func (e *Entry) ident() string { return pgx.Identifier{e.ParentSchema, e.Partition}.Sanitize() }

const entryColumns = `id, parent_schema, parent_table, partition_name, key_column, key_type, range_from, range_to,
	columns, state, bucket, object_key, format, rows, raw_bytes, bytes, COALESCE(content_checksum, ''),
	COALESCE(object_sha256, ''), COALESCE(object_etag, ''), run_id, attempts, error, restored_as, created_at, updated_at, exported_at,
	verified_at, detached_at, dropped_at, restored_at`

func scanEntry(row pgx.Row) (*Entry, error) {
	var e Entry
	var cols []byte
	err := row.Scan(&e.ID, &e.ParentSchema, &e.ParentTable, &e.Partition, &e.KeyColumn, &e.KeyType, &e.RangeFrom,
		&e.RangeTo, &cols, &e.State, &e.Bucket, &e.ObjectKey, &e.Format, &e.Rows, &e.RawBytes, &e.Bytes,
		&e.ContentChecksum, &e.ObjectSHA256, &e.ObjectETag, &e.RunID, &e.Attempts, &e.Error, &e.RestoredAs, &e.CreatedAt,
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
	var id int64
	err = q.QueryRow(ctx, `
		INSERT INTO partition_archives (parent_schema, parent_table, partition_name, key_column, key_type,
			range_from, range_to, columns, state, bucket, object_key, format, run_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'exporting', $9, $10, $11, $12)
		ON CONFLICT (parent_schema, parent_table, partition_name) DO NOTHING
		RETURNING id`,
		e.ParentSchema, e.ParentTable, e.Partition, e.KeyColumn, e.KeyType, e.RangeFrom, e.RangeTo, cols,
		e.Bucket, e.ObjectKey, e.Format, e.RunID).Scan(&id)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("record %s in manifest: %w", e.Name(), err)
	}
	got, err := getEntry(ctx, q, e.ParentSchema, e.ParentTable, e.Partition)
	if err != nil {
		return nil, err
	}
	got.claimedNow = id != 0 && got.ID == id
	return got, nil
}

// exportKeyRe matches an object key given to one export (nextExportKey): <stem>.<id>-<n>.csv.gz.
var exportKeyRe = regexp.MustCompile(`^(.*)\.(\d+)-(\d+)\.csv\.gz$`)

// nextExportKey is the object key of a new export of e: <stem>.<manifest id>-<n>.csv.gz, n one
// more than the current key's. Partition names hold no dots, so it names no other partition.
func nextExportKey(e *Entry) string {
	stem, n := strings.TrimSuffix(e.ObjectKey, ".csv.gz"), 0
	if m := exportKeyRe.FindStringSubmatch(e.ObjectKey); m != nil && m[2] == strconv.FormatInt(e.ID, 10) {
		stem = m[1]
		n, _ = strconv.Atoi(m[3])
	}
	return fmt.Sprintf("%s.%d-%d.csv.gz", stem, e.ID, n+1)
}

// setExportKey records key as the object the export about to start writes, before it writes:
// from then on only that export can record its result (recordExport checks the key).
func setExportKey(ctx context.Context, q querier, e *Entry, key string) error {
	tag, err := q.Exec(ctx, `UPDATE partition_archives SET object_key = $3, updated_at = now()
		WHERE id = $1 AND state = 'exporting' AND object_key = $2`, e.ID, e.ObjectKey, key)
	if err != nil {
		return fmt.Errorf("manifest %s: record export object %s: %w", e.Name(), key, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("manifest %s: record export object %s: %w", e.Name(), key, errMoved)
	}
	e.ObjectKey = key
	return nil
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
	var states []string
	for _, st := range openStates(drop) {
		states = append(states, string(st))
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

// recordVerified moves e to verified with the ETag its read-back saw.
func recordVerified(ctx context.Context, q querier, e *Entry, etag string) error {
	tag, err := q.Exec(ctx, `UPDATE partition_archives SET state = 'verified', object_etag = $2, error = '',
		verified_at = now(), updated_at = now() WHERE id = $1 AND state = 'exported'`, e.ID, etag)
	if err != nil {
		return fmt.Errorf("manifest %s: record verify: %w", e.Name(), err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("manifest %s: record verify: %w", e.Name(), errMoved)
	}
	e.State, e.Error, e.ObjectETag = StateVerified, "", etag
	return nil
}

// setColumns records the columns the next export writes (the table's, read at that export).
func setColumns(ctx context.Context, q querier, e *Entry, cols []column) error {
	b, err := json.Marshal(cols)
	if err != nil {
		return err
	}
	tag, err := q.Exec(ctx, `UPDATE partition_archives SET columns = $2, updated_at = now()
		WHERE id = $1 AND state = 'exporting'`, e.ID, b)
	if err != nil {
		return fmt.Errorf("manifest %s: record columns: %w", e.Name(), err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("manifest %s: record columns: %w", e.Name(), errMoved)
	}
	e.Columns = cols
	return nil
}

func recordExport(ctx context.Context, q querier, e *Entry, s exportStats) error {
	tag, err := q.Exec(ctx, `UPDATE partition_archives SET state = 'exported', rows = $2, raw_bytes = $3, bytes = $4,
		content_checksum = $5, object_sha256 = $6, attempts = attempts + 1, error = '', exported_at = now(),
		updated_at = now() WHERE id = $1 AND state = 'exporting' AND object_key = $7`,
		e.ID, s.Rows, s.RawBytes, s.Bytes, s.Checksum, s.ObjectSHA256, e.ObjectKey)
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

// NewDeployment reports whether this database has never archived a partition nor recorded a
// first-run preview: the first run of a new deployment, which only previews (first_run_dry_run).
func NewDeployment(ctx context.Context, q querier) (bool, error) {
	var fresh bool
	if err := q.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM partition_archives)
		AND NOT EXISTS (SELECT 1 FROM partition_archive_previews)`).Scan(&fresh); err != nil {
		return false, fmt.Errorf("read archive manifest: %w", err)
	}
	return fresh, nil
}

// RecordPreview keeps a first run's preview; once one is recorded the next run acts.
func RecordPreview(ctx context.Context, q querier, runID int64, res Result) error {
	plan, err := json.Marshal(res)
	if err != nil {
		return err
	}
	var run *int64
	if runID > 0 {
		run = &runID
	}
	if _, err := q.Exec(ctx, `INSERT INTO partition_archive_previews (run_id, plan) VALUES ($1, $2)`, run, plan); err != nil {
		return fmt.Errorf("record archive preview: %w", err)
	}
	return nil
}
