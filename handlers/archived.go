package handlers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatplat/job-service/job"
)

// archivedPartitions refuses a report over [from, to) when partition_archive has taken a
// partition of table holding part of that range out of it (detached or dropped): the report's
// queries would count nothing there and write zeros over a good row. The error names each
// partition and how to bring it back. table is the report's configured name, "t" or "s.t".
func archivedPartitions(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, table string, from, to time.Time) error {
	schema, name, qualified := strings.Cut(table, ".")
	if !qualified {
		schema, name = "", schema
	}
	// Bounds are the literals Postgres printed for the partition; every key type the archive
	// accepts (date, timestamp, timestamptz) casts to timestamptz.
	rows, err := q.Query(ctx, `SELECT parent_schema, partition_name, state, range_from, range_to, bucket, object_key
		FROM partition_archives
		WHERE parent_table = $1 AND parent_schema = COALESCE(NULLIF($2, ''), current_schema())
			AND state IN ('detached', 'dropped')
			-- A detached partition an operator attached back is readable again.
			AND NOT (state = 'detached' AND EXISTS (SELECT 1 FROM pg_inherits i
				WHERE i.inhrelid = to_regclass(format('%I.%I', parent_schema, partition_name))))
			AND range_from::timestamptz < $4 AND range_to::timestamptz > $3
		ORDER BY range_from`, name, schema, from, to)
	if err != nil {
		return fmt.Errorf("read archive manifest for %s: %w", table, err)
	}
	type archived struct{ Schema, Partition, State, From, To, Bucket, Key string }
	found, err := pgx.CollectRows(rows, pgx.RowToStructByPos[archived])
	if err != nil {
		return fmt.Errorf("read archive manifest for %s: %w", table, err)
	}
	var msgs []string
	for _, a := range found {
		where := fmt.Sprintf("%s partition %s [%s, %s) is archived to s3://%s/%s", table, a.Partition, a.From, a.To, a.Bucket, a.Key)
		if a.State == "dropped" {
			msgs = append(msgs, fmt.Sprintf("%s and dropped: restore it with `jobctl archive restore %s %s`", where, table, a.Partition))
			continue
		}
		parent := pgx.Identifier{a.Schema, name}.Sanitize()
		part := pgx.Identifier{a.Schema, a.Partition}.Sanitize()
		msgs = append(msgs, fmt.Sprintf("%s and detached (still in Postgres as %s): attach it back with "+
			"ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')", where, part, parent, part, a.From, a.To))
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}

// refuseArchived runs archivedPartitions over each table and turns what it finds into one
// error that retrying cannot fix.
func refuseArchived(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, what string, from, to time.Time, tables ...string) error {
	var errs []error
	for _, t := range tables {
		if err := archivedPartitions(ctx, q, t, from, to); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	err := fmt.Errorf("%s reads archived months, so it would count nothing there; not overwriting the report. %w; then run it again",
		what, errors.Join(errs...))
	return job.Discard("archived partitions", err)
}
