package handlers

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatplat/job-service/job"
)

// partitionRange is one existing partition's [from, to). For a key of type timestamp or date
// the bounds are wall-clock values, held here as that wall clock in UTC.
type partitionRange struct {
	name     string
	from, to time.Time
}

// existingBounds reads the bounds of parent's range partitions from pg_class.relpartbound. The
// default partition and open (MINVALUE/MAXVALUE) bounds are left out: they bound no month.
func (p *Partition) existingBounds(ctx context.Context, parent parentInfo) ([]partitionRange, error) {
	// A timestamptz bound is printed with its offset and cast back to the same instant; a
	// timestamp or date bound is a wall clock, read as that wall clock in UTC.
	rows, err := p.db.Query(ctx, `
		SELECT c.relname,
			CASE WHEN $2 THEN b[1]::timestamptz ELSE b[1]::timestamp AT TIME ZONE 'UTC' END,
			CASE WHEN $2 THEN b[2]::timestamptz ELSE b[2]::timestamp AT TIME ZONE 'UTC' END
		FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid,
			regexp_match(pg_get_expr(c.relpartbound, c.oid), '^FOR VALUES FROM \(''([^'']*)''\) TO \(''([^'']*)''\)$') b
		WHERE i.inhparent = $1::regclass AND b IS NOT NULL
		ORDER BY 2`, pgx.Identifier{parent.schema, parent.name}.Sanitize(), parent.keyType == "timestamp with time zone")
	if err != nil {
		return nil, fmt.Errorf("read partition bounds of %s: %w", parent.name, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (partitionRange, error) {
		var b partitionRange
		err := r.Scan(&b.name, &b.from, &b.to)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("read partition bounds of %s: %w", parent.name, err)
	}
	return out, nil
}

// monthZone is the zone whose months the new partitions cover: the configured one, or the one
// the newest existing partition was drawn in. Every existing bound must be a month start in
// it, or nothing is created: the new months would not meet the old ones.
func (p *Partition) monthZone(parent parentInfo, existing []partitionRange) (*time.Location, error) {
	if parent.keyType != "timestamp with time zone" {
		// Wall-clock bounds carry no zone; their months start at a wall-clock midnight.
		return p.checkBounds(parent, existing, time.UTC, "the wall clock of "+parent.keyType)
	}
	if p.loc != nil {
		return p.checkBounds(parent, existing, p.loc, "time_zone "+p.cfg.TimeZone)
	}
	if len(existing) == 0 {
		return time.UTC, nil
	}
	newest := existing[0]
	for _, b := range existing[1:] {
		if b.to.After(newest.to) {
			newest = b
		}
	}
	off, ok := monthStartOffset(newest.to)
	if !ok {
		return nil, job.Discard("bounds not months", fmt.Errorf("partition %s ends at %s, which starts a month in no zone",
			newest.name, newest.to.UTC().Format(time.RFC3339)))
	}
	loc := time.UTC
	if off != 0 {
		loc = time.FixedZone(fmt.Sprintf("UTC%+03d:%02d", off/3600, abs(off%3600)/60), off)
	}
	return p.checkBounds(parent, existing, loc, "the zone of the newest partition "+newest.name+" ("+loc.String()+
		"; a zone with daylight saving must be named in handlers.pg_partition.time_zone)")
}

func (p *Partition) checkBounds(parent parentInfo, existing []partitionRange, loc *time.Location, what string) (*time.Location, error) {
	for _, b := range existing {
		if !isMonthStart(b.from.In(loc)) || !isMonthStart(b.to.In(loc)) {
			return nil, job.Discard("zone mismatch", fmt.Errorf(
				"partition %s of %s covers [%s, %s), which are not month bounds in %s: set handlers.pg_partition.time_zone to the zone the partitions were drawn in, or leave it unset to follow them",
				b.name, parent.name, b.from.UTC().Format(time.RFC3339), b.to.UTC().Format(time.RFC3339), what))
		}
	}
	return loc, nil
}

// monthStartOffset finds the UTC offset (a multiple of 15 minutes within ±14h) at which t is
// midnight on the first of a month. Month starts are weeks apart, so at most one fits.
func monthStartOffset(t time.Time) (int, bool) {
	for off := -14 * 3600; off <= 14*3600; off += 15 * 60 {
		if isMonthStart(t.In(time.FixedZone("", off))) {
			return off, true
		}
	}
	return 0, false
}

func isMonthStart(t time.Time) bool {
	return t.Day() == 1 && t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0
}

// covering returns an existing partition that overlaps [from, to), if any.
func covering(existing []partitionRange, from, to time.Time) (partitionRange, bool) {
	for _, b := range existing {
		if b.from.Before(to) && from.Before(b.to) {
			return b, true
		}
	}
	return partitionRange{}, false
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
