package filereap

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatplat/job-service/sqlident"
)

// FileTable names the chat platform's file table and its columns. It is not ours, so every
// name is configurable; the defaults match deploy/local/chat_schema.sql.
type FileTable struct {
	// Table is "file_metadata" or "schema.table".
	Table string `yaml:"table"`
	// DeletedStatus is the status value meaning "deleted by the user" (2).
	DeletedStatus int `yaml:"deleted_status"`
	// CollectingStatus (3) marks a row the GC has committed to removing, before its object is
	// deleted. The file service must not re-reference such a row (see docs/contracts.md, "The file GC's
	// contract"): that is what makes a cancelled or killed GC safe.
	CollectingStatus int           `yaml:"collecting_status"`
	Columns          FileTableCols `yaml:"columns"`
}

// FileTableCols are the column names the GC reads.
type FileTableCols struct {
	ID         string `yaml:"id"`
	FileHash   string `yaml:"file_hash"`
	Bucket     string `yaml:"bucket"`
	ObjectPath string `yaml:"object_path"`
	Size       string `yaml:"size_bytes"`
	RefCount   string `yaml:"ref_count"`
	Status     string `yaml:"status"`
	UpdatedAt  string `yaml:"updated_at"`
}

// WithDefaults fills unset names.
func (t FileTable) WithDefaults() FileTable {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&t.Table, "file_metadata")
	if t.DeletedStatus == 0 {
		t.DeletedStatus = 2
	}
	if t.CollectingStatus == 0 {
		t.CollectingStatus = 3
	}
	c := &t.Columns
	def(&c.ID, "id")
	def(&c.FileHash, "file_hash")
	def(&c.Bucket, "bucket")
	def(&c.ObjectPath, "object_path")
	def(&c.Size, "size_bytes")
	def(&c.RefCount, "ref_count")
	def(&c.Status, "status")
	def(&c.UpdatedAt, "updated_at")
	return t
}

// Validate names the first bad key.
func (t FileTable) Validate() error {
	if err := sqlident.ValidateTable(t.Table); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	c := t.Columns
	for _, col := range []struct{ key, name string }{
		{"id", c.ID}, {"file_hash", c.FileHash}, {"bucket", c.Bucket}, {"object_path", c.ObjectPath},
		{"size_bytes", c.Size}, {"ref_count", c.RefCount}, {"status", c.Status}, {"updated_at", c.UpdatedAt},
	} {
		if !sqlident.Plain(col.name) {
			return fmt.Errorf("columns.%s: %q is not a plain identifier", col.key, col.name)
		}
	}
	if t.DeletedStatus < -32768 || t.DeletedStatus > 32767 {
		return fmt.Errorf("deleted_status: %d is not a smallint", t.DeletedStatus)
	}
	if t.CollectingStatus < -32768 || t.CollectingStatus > 32767 || t.CollectingStatus == t.DeletedStatus {
		return fmt.Errorf("collecting_status: %d is not a smallint other than deleted_status", t.CollectingStatus)
	}
	return nil
}

// SQL holds the table's quoted identifiers, built once, for the queries of the reaper and of
// the sweep that finds its candidates.
type SQL struct {
	Table, ID, Hash, Bucket, Path, Size, RefCount, Status, UpdatedAt string
	Deleted, Collecting                                              int
}

// Quoted returns t's identifiers quoted for SQL; t must have validated.
func (t FileTable) Quoted() SQL {
	c := t.Columns
	q := func(s string) string { return pgx.Identifier{s}.Sanitize() }
	return SQL{
		Table: pgx.Identifier(splitTable(t.Table)).Sanitize(),
		ID:    q(c.ID), Hash: q(c.FileHash), Bucket: q(c.Bucket), Path: q(c.ObjectPath), Size: q(c.Size),
		RefCount: q(c.RefCount), Status: q(c.Status), UpdatedAt: q(c.UpdatedAt), Deleted: t.DeletedStatus,
		Collecting: t.CollectingStatus,
	}
}

// Eligible is the predicate of a collectable row. The deleted status is a validated integer
// written as a literal so the planner can match the partial index on (status = 2 AND
// ref_count = 0), which a placeholder would hide from generic plans.
func (s SQL) Eligible() string {
	return fmt.Sprintf("%s = %d AND %s = 0", s.Status, s.Deleted, s.RefCount)
}

func splitTable(name string) []string {
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			return []string{name[:i], name[i+1:]}
		}
	}
	return []string{name}
}

// ValidateGrace refuses grace periods too short to be safe.
func ValidateGrace(key string, d, minimum time.Duration) error {
	if d < minimum {
		return fmt.Errorf("%s: %s is below %s", key, d, minimum)
	}
	return nil
}

// ErrNoS3 fails a reap on a node without an S3 client.
var ErrNoS3 = errors.New("no S3 client: set s3.endpoint")
