package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/chatplat/job-service/sqlident"
)

// RestoreMode says where a restored partition goes.
type RestoreMode string

// Restore modes.
const (
	// RestoreAttach re-creates the partition under its own name and attaches it to the
	// parent with its original bounds.
	RestoreAttach RestoreMode = "attach"
	// RestoreSeparate loads it into a plain table beside the parent (<partition>_restored by
	// default), with the columns it had when archived.
	RestoreSeparate RestoreMode = "separate"
)

// RestoreResult reports a restore.
type RestoreResult struct {
	Table    string      `json:"table"`
	Mode     RestoreMode `json:"mode"`
	Object   string      `json:"object"`
	Rows     int64       `json:"rows"`
	Checksum string      `json:"content_checksum"`
}

var typePattern = regexp.MustCompile(`^[A-Za-z0-9_ ,.()\[\]"]+$`)

// Restore loads an archived partition back: in one transaction it creates the table, streams
// the object through gunzip into COPY FROM STDIN, checks the object's SHA-256, the row count
// and the content checksum of both the object and a re-read of the loaded table against the
// manifest, attaches it (RestoreAttach), and marks the manifest row restored. Any mismatch
// rolls everything back. The archive object stays where it is.
func Restore(ctx context.Context, a *Archiver, table, part string, mode RestoreMode, as string) (RestoreResult, error) {
	res := RestoreResult{Mode: mode}
	if err := sqlident.ValidateTable(table); err != nil {
		return res, err
	}
	if !sqlident.Plain(part) {
		return res, fmt.Errorf("partition %q is not a plain identifier", part)
	}
	schema, name, qualified := strings.Cut(table, ".")
	if !qualified {
		name = schema
		if err := a.db.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return res, fmt.Errorf("current schema: %w", err)
		}
	}
	e, err := getEntry(ctx, a.db, schema, name, part)
	if err != nil {
		return res, err
	}
	switch e.State {
	case StateDropped, StateDetached:
	case StateRestored:
		return res, fmt.Errorf("%s was already restored as %s", e.Name(), e.RestoredAs)
	default:
		return res, fmt.Errorf("%s is %s: its archive is not complete (wait for the job, or see `jobctl archive list`)", e.Name(), e.State)
	}
	target := part
	switch mode {
	case RestoreAttach:
		if as != "" && as != part {
			return res, errors.New("--as works with --separate only: an attached partition keeps its name")
		}
	case RestoreSeparate:
		target = as
		if target == "" {
			target = part + "_restored"
		}
		if !sqlident.Plain(target) {
			return res, fmt.Errorf("table name %q is not a plain identifier", target)
		}
	default:
		return res, fmt.Errorf("restore mode %q is not attach or separate", mode)
	}
	res.Table, res.Object = schema+"."+target, e.Bucket+"/"+e.ObjectKey
	targetID := pgx.Identifier{schema, target}.Sanitize()

	tx, err := a.db.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	if err := pinSession(ctx, tx); err != nil {
		return res, err
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, targetID).Scan(&exists); err != nil {
		return res, fmt.Errorf("look up %s: %w", targetID, err)
	}
	if exists {
		return res, fmt.Errorf("%s already exists: drop or rename it, or restore --separate --as NAME", targetID)
	}
	var p parent
	if mode == RestoreAttach {
		if p, err = lookupParent(ctx, tx, schema+"."+name); err != nil {
			return res, err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)`,
			targetID, p.ident())); err != nil {
			return res, fmt.Errorf("create %s: %w", targetID, err)
		}
	} else {
		defs := make([]string, len(e.Columns))
		for i, c := range e.Columns {
			if !typePattern.MatchString(c.Type) {
				return res, fmt.Errorf("manifest column %s has type %q this restore will not put in DDL", c.Name, c.Type)
			}
			defs[i] = pgx.Identifier{c.Name}.Sanitize() + " " + c.Type
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE %s (%s)`, targetID, strings.Join(defs, ", "))); err != nil {
			return res, fmt.Errorf("create %s: %w", targetID, err)
		}
	}

	// Object -> (sha256, gunzip, row hasher) -> COPY FROM STDIN, streamed through a pipe.
	pr, pw := io.Pipe()
	read := make(chan struct {
		st  exportStats
		err error
	}, 1)
	go func() {
		st, err := a.readBack(ctx, e, pw)
		pw.CloseWithError(err)
		read <- struct {
			st  exportStats
			err error
		}{st, err}
	}()
	tag, copyErr := tx.Conn().PgConn().CopyFrom(ctx, pr,
		fmt.Sprintf(`COPY %s (%s) FROM STDIN (FORMAT csv, HEADER true)`, targetID, columnList(e.Columns)))
	pr.CloseWithError(errors.New("copy ended")) // unblocks the reader if COPY stopped early
	r := <-read
	if r.err != nil {
		return res, r.err
	}
	if copyErr != nil {
		return res, fmt.Errorf("load %s: %w", targetID, copyErr)
	}
	if err := compare(e, r.st, true); err != nil {
		return res, fmt.Errorf("object %s: %w", res.Object, err)
	}
	if tag.RowsAffected() != *e.Rows {
		return res, fmt.Errorf("load %s: postgres loaded %d rows, manifest has %d", targetID, tag.RowsAffected(), *e.Rows)
	}
	// Postgres side: the loaded table must print back to the archived content.
	rows := newRowHasher()
	if _, err := tx.Conn().PgConn().CopyTo(ctx, rows,
		fmt.Sprintf(`COPY %s (%s) TO STDOUT (FORMAT csv, HEADER true)`, targetID, columnList(e.Columns))); err != nil {
		return res, fmt.Errorf("re-read %s: %w", targetID, err)
	}
	if err := compare(e, exportStats{Rows: rows.Rows(), Checksum: rows.Checksum()}, false); err != nil {
		return res, fmt.Errorf("restored %s: %w", targetID, err)
	}
	if mode == RestoreAttach {
		if _, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM (%s) TO (%s)`,
			p.ident(), targetID, quoteLiteral(e.RangeFrom), quoteLiteral(e.RangeTo))); err != nil {
			return res, fmt.Errorf("attach %s: %w", targetID, err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE partition_archives SET state = 'restored', restored_as = $2, restored_at = now(),
		updated_at = now(), error = '' WHERE id = $1`, e.ID, res.Table); err != nil {
		return res, fmt.Errorf("manifest %s: %w", e.Name(), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("commit restore of %s: %w", targetID, err)
	}
	res.Rows, res.Checksum = *e.Rows, e.ContentChecksum
	return res, nil
}
