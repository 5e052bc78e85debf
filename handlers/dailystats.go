package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/sqlident"
)

// DailyStatsKind is the job kind of DailyStats.
const DailyStatsKind = "daily_stats"

// DailyStatsPolicy is daily_stats' default run policy: the design's daily 01:00 (in the
// config's time_zone, whose midnights also bound the day it reports); a night missed while no
// node ran is caught up within 12 hours.
func DailyStatsPolicy() job.Spec {
	return job.Spec{Schedule: "0 0 1 * * *", Timeout: 10 * time.Minute,
		Misfire: job.MisfireFireOnce, MisfireBound: 12 * time.Hour}
}

// ValidateColumnName accepts one plain identifier. Column names come from config and are
// spliced into SQL (quoted), so anything else is refused.
func ValidateColumnName(name string) error {
	if !sqlident.Plain(name) {
		return fmt.Errorf("column %q is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63)", name)
	}
	return nil
}

// validateSource checks a table name and its columns, naming the bad key under prefix.
func validateSource(prefix, table string, cols map[string]string) error {
	if err := sqlident.ValidateTable(table); err != nil {
		return fmt.Errorf("%s.table: %w", prefix, err)
	}
	for key, col := range cols {
		if err := ValidateColumnName(col); err != nil {
			return fmt.Errorf("%s.%s: %w", prefix, key, err)
		}
	}
	return nil
}

// ident quotes "table" or "schema.table" (already validated) for SQL.
func ident(name string) string { return pgx.Identifier(strings.Split(name, ".")).Sanitize() }

func col(name string) string { return pgx.Identifier{name}.Sanitize() }

// isUndefined reports a missing table or column: a config or schema mistake that retrying
// cannot fix.
func isUndefined(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "42703")
}

// noColumn in an optional column setting says the table has no such column.
const noColumn = "-"

// UsersSource names the chat platform's users table.
type UsersSource struct {
	Table           string `yaml:"table" chat:"users.table" deprecated:"set chat_schema.users.table, shared by the jobs"`
	CreatedAtColumn string `yaml:"created_at_column" chat:"users.created_at" deprecated:"set chat_schema.users.created_at, shared by the jobs"`
	// DeletedAtColumn excludes users deleted before the end of the day from the total; "-"
	// for a table without soft deletes.
	DeletedAtColumn string `yaml:"deleted_at_column" chat:"users.deleted_at" deprecated:"set chat_schema.users.deleted_at, shared by the jobs"`
}

// AuditSource names the API audit log (one row per call).
type AuditSource struct {
	Table           string `yaml:"table" chat:"audit_logs.table" deprecated:"set chat_schema.audit_logs.table, shared by the jobs"`
	UserIDColumn    string `yaml:"user_id_column" chat:"audit_logs.user_id" deprecated:"set chat_schema.audit_logs.user_id, shared by the jobs"`
	CreatedAtColumn string `yaml:"created_at_column" chat:"audit_logs.created_at" deprecated:"set chat_schema.audit_logs.created_at, shared by the jobs"`
}

// MessagesSource names the chat messages table.
type MessagesSource struct {
	Table           string `yaml:"table" chat:"messages.table" deprecated:"set chat_schema.messages.table, shared by the jobs"`
	CreatedAtColumn string `yaml:"created_at_column" chat:"messages.created_at" deprecated:"set chat_schema.messages.created_at, shared by the jobs"`
}

// FilesSource names the file metadata table.
type FilesSource struct {
	Table           string `yaml:"table"`
	SizeColumn      string `yaml:"size_column"`
	CreatedAtColumn string `yaml:"created_at_column"`
}

// DailyStatsConfig configures the daily_stats job. The sources are the chat platform's
// tables, not ours: their names and columns are configurable; defaults match
// deploy/local/chat_schema.sql. The output table daily_stats is the design's, as the ledger
// migrates it (00010_design_reports.sql); the GC's gc_log, read for freed bytes, is the
// ledger's too.
type DailyStatsConfig struct {
	// TimeZone whose midnights bound a day (IANA name): the job's
	// time_zone unless set.
	TimeZone string         `yaml:"time_zone" deprecated:"set jobs.daily_stats.time_zone; the report follows its job's zone"`
	Users    UsersSource    `yaml:"users"`
	Audit    AuditSource    `yaml:"audit_logs"`
	Messages MessagesSource `yaml:"messages"`
	Files    FilesSource    `yaml:"files"`
}

// WithDefaults fills unset fields.
func (c DailyStatsConfig) WithDefaults() DailyStatsConfig {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.TimeZone, "UTC")
	def(&c.Users.Table, "users")
	def(&c.Users.CreatedAtColumn, "created_at")
	def(&c.Users.DeletedAtColumn, "deleted_at")
	def(&c.Audit.Table, "audit_logs")
	def(&c.Audit.UserIDColumn, "user_id")
	def(&c.Audit.CreatedAtColumn, "created_at")
	def(&c.Messages.Table, "chat_messages")
	def(&c.Messages.CreatedAtColumn, "created_at")
	def(&c.Files.Table, "file_metadata")
	def(&c.Files.SizeColumn, "size_bytes")
	def(&c.Files.CreatedAtColumn, "created_at")
	return c
}

// WithTimeZone sets the zone whose midnights bound a day, unless the section names one: the
// report day follows the config's top-level time_zone.
func (c DailyStatsConfig) WithTimeZone(zone string) DailyStatsConfig {
	if c.TimeZone == "" {
		c.TimeZone = zone
	}
	return c
}

// Validate names the first bad key.
func (c DailyStatsConfig) Validate() error {
	if _, err := time.LoadLocation(c.TimeZone); err != nil {
		return fmt.Errorf("time_zone: %w", err)
	}
	users := map[string]string{"created_at_column": c.Users.CreatedAtColumn}
	if c.Users.DeletedAtColumn != noColumn {
		users["deleted_at_column"] = c.Users.DeletedAtColumn
	}
	if err := validateSource("users", c.Users.Table, users); err != nil {
		return err
	}
	if err := validateSource("audit_logs", c.Audit.Table, map[string]string{
		"user_id_column": c.Audit.UserIDColumn, "created_at_column": c.Audit.CreatedAtColumn}); err != nil {
		return err
	}
	if err := validateSource("messages", c.Messages.Table, map[string]string{
		"created_at_column": c.Messages.CreatedAtColumn}); err != nil {
		return err
	}
	return validateSource("files", c.Files.Table, map[string]string{
		"size_column": c.Files.SizeColumn, "created_at_column": c.Files.CreatedAtColumn})
}

// DailyStatsArgs are the run parameters of daily_stats.
type DailyStatsArgs struct {
	// Date (YYYY-MM-DD) backfills that day; empty means yesterday in the time zone.
	Date string `json:"date,omitempty"`
}

// Validate refuses a date that is not YYYY-MM-DD.
func (a *DailyStatsArgs) Validate() error {
	if a.Date == "" {
		return nil
	}
	if _, err := time.Parse(time.DateOnly, a.Date); err != nil {
		return fmt.Errorf("date %q: want YYYY-MM-DD", a.Date)
	}
	return nil
}

// DailyStatsResult is the run's result JSON: the row as upserted.
type DailyStatsResult struct {
	Date              string    `json:"date"`
	TimeZone          string    `json:"time_zone"`
	From              time.Time `json:"from"`
	To                time.Time `json:"to"`
	TotalUsers        int64     `json:"total_users"`
	DAU               int64     `json:"dau"`
	Messages          int64     `json:"messages"`
	NewUsers          int64     `json:"new_users"`
	StorageAddedBytes int64     `json:"storage_added_bytes"`
	StorageFreedBytes int64     `json:"storage_freed_bytes"`
	// StorageUsage is the design's storage_usage: the day's storage increment, bytes added
	// minus bytes freed; negative on a day the GC freed more than was uploaded.
	StorageUsage int64      `json:"storage_usage"`
	APIQPSPeak   int64      `json:"api_qps_peak"`
	APIQPSPeakAt *time.Time `json:"api_qps_peak_at,omitempty"`
	// Replaced says the day had a row already (a rerun or backfill overwrote it).
	Replaced bool `json:"replaced"`
	// IndexWarnings names the day's reads no index bounds, with the index to create.
	IndexWarnings []string `json:"index_warnings,omitempty"`
}

// DailyStats computes one day's platform figures and upserts them into daily_stats.
//
// Every query bounds the time column with a half-open range of timestamptz placeholders
// [day start, next day start), the column bare on the left: the planner (or the executor, for
// a generic plan) then prunes audit_logs and chat_messages to the one monthly partition
// holding the day instead of scanning a year of them.
type DailyStats struct {
	db  *pgxpool.Pool
	cfg DailyStatsConfig
	loc *time.Location
	now func() time.Time
	log *slog.Logger
	q   dailyQueries
}

// dailyQueries are the statements, built once from validated, quoted names. TotalUsers takes
// $1 = next day start; the others $1 = day start and $2 = next day start.
type dailyQueries struct {
	TotalUsers, NewUsers, DAU, Messages, StorageAdded, StorageFreed, QPSPeak string
}

func buildDailyQueries(c DailyStatsConfig) dailyQueries {
	u, uc := ident(c.Users.Table), col(c.Users.CreatedAtColumn)
	total := fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s < $1`, u, uc)
	if c.Users.DeletedAtColumn != noColumn {
		ud := col(c.Users.DeletedAtColumn)
		total = fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s < $1 AND (%s IS NULL OR %s >= $1)`, u, uc, ud, ud)
	}
	a, ac, au := ident(c.Audit.Table), col(c.Audit.CreatedAtColumn), col(c.Audit.UserIDColumn)
	m, mc := ident(c.Messages.Table), col(c.Messages.CreatedAtColumn)
	f, fc, fs := ident(c.Files.Table), col(c.Files.CreatedAtColumn), col(c.Files.SizeColumn)
	return dailyQueries{
		TotalUsers: total,
		NewUsers:   fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s >= $1 AND %s < $2`, u, uc, uc),
		DAU:        fmt.Sprintf(`SELECT count(DISTINCT %s) FROM %s WHERE %s >= $1 AND %s < $2`, au, a, ac, ac),
		Messages:   fmt.Sprintf(`SELECT count(*) FROM %s WHERE %s >= $1 AND %s < $2`, m, mc, mc),
		StorageAdded: fmt.Sprintf(`SELECT COALESCE(sum(%s), 0)::bigint FROM %s WHERE %s >= $1 AND %s < $2`,
			fs, f, fc, fc),
		// Objects the GC found already gone freed nothing that day.
		StorageFreed: `SELECT COALESCE(sum(bytes), 0)::bigint FROM gc_log
			WHERE NOT object_missing AND deleted_at >= $1 AND deleted_at < $2`,
		// The busiest second: truncation happens after the range filter has pruned, so it
		// costs nothing in partition pruning. Ties go to the earliest second.
		QPSPeak: fmt.Sprintf(`SELECT date_trunc('second', %s) AS sec, count(*) AS n FROM %s
			WHERE %s >= $1 AND %s < $2 GROUP BY 1 ORDER BY n DESC, sec ASC LIMIT 1`, ac, a, ac, ac),
	}
}

// NewDailyStats returns the daily_stats handler.
func NewDailyStats(db *pgxpool.Pool, cfg DailyStatsConfig, now func() time.Time, log *slog.Logger) (*DailyStats, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("daily_stats config: %w", err)
	}
	loc, _ := time.LoadLocation(cfg.TimeZone)
	return &DailyStats{db: db, cfg: cfg, loc: loc, now: now, log: log, q: buildDailyQueries(cfg)}, nil
}

// Kind implements Handler.
func (d *DailyStats) Kind() string { return DailyStatsKind }

// Day returns the bounds of the day a run reports on: the date parameter, else the day
// before the run's scheduled time (its occurrence) in the time zone. Never the clock: forced
// runs, retries and backfills carry the date they stand for (job.Pin), so a retry after
// midnight still reports the intended day.
func (d *DailyStats) Day(run *job.Run[DailyStatsArgs]) (date string, from, to time.Time) {
	return reportDay(run.Args, run.ScheduledAt, d.loc)
}

// Run implements Handler.
func (d *DailyStats) Run(ctx context.Context, run *job.Run[DailyStatsArgs]) (any, error) {
	date, from, to := d.Day(run)
	res := DailyStatsResult{Date: date, TimeZone: d.cfg.TimeZone, From: from, To: to}
	if err := refuseArchived(ctx, d.db, "daily_stats "+date, from, to, d.cfg.Audit.Table, d.cfg.Messages.Table); err != nil {
		return res, err
	}
	warnings, err := d.missingTimeIndexes(ctx)
	if err != nil {
		return res, err
	}
	res.IndexWarnings = warnings
	if err := d.measure(ctx, from, to, &res); err != nil {
		return res, err
	}
	res.StorageUsage = res.StorageAddedBytes - res.StorageFreedBytes
	// api_qps_peak is the design's INT; a peak above 2^31-1 calls a second is not a number
	// this platform will see, but a clamp beats a failed report.
	peak := min(res.APIQPSPeak, math.MaxInt32)
	var inserted bool
	err = d.db.QueryRow(ctx, `
		INSERT INTO daily_stats (stat_date, total_users, active_users, total_msgs, storage_usage,
			api_qps_peak, time_zone, new_users, storage_added_bytes, storage_freed_bytes, api_qps_peak_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (stat_date) DO UPDATE SET total_users = EXCLUDED.total_users,
			active_users = EXCLUDED.active_users, total_msgs = EXCLUDED.total_msgs,
			storage_usage = EXCLUDED.storage_usage, api_qps_peak = EXCLUDED.api_qps_peak,
			time_zone = EXCLUDED.time_zone, new_users = EXCLUDED.new_users,
			storage_added_bytes = EXCLUDED.storage_added_bytes,
			storage_freed_bytes = EXCLUDED.storage_freed_bytes,
			api_qps_peak_at = EXCLUDED.api_qps_peak_at, updated_at = now()
		RETURNING xmax = 0`, date, res.TotalUsers, res.DAU, res.Messages, res.StorageUsage, int32(peak),
		d.cfg.TimeZone, res.NewUsers, res.StorageAddedBytes, res.StorageFreedBytes, res.APIQPSPeakAt).Scan(&inserted)
	if err != nil {
		return res, fmt.Errorf("upsert daily_stats %s: %w", date, err)
	}
	res.Replaced = !inserted
	d.log.InfoContext(ctx, "daily stats", "date", date, "time_zone", d.cfg.TimeZone, "dau", res.DAU,
		"messages", res.Messages, "replaced", res.Replaced)
	return res, nil
}

// measure runs every query in one read-only REPEATABLE READ transaction, so the figures come
// from one snapshot even while the platform writes.
// missingTimeIndexes says which of the day's partitioned reads have no index leading with
// their time column. Without one each run reads the whole month's partition: audit_logs twice
// (DAU, QPS peak), 7.6 GB at production volume against 0.48 GB with a BRIN index
// (BENCHMARKS.md, "Jobs at production volume"). The run goes on, slower, and says what to create.
func (d *DailyStats) missingTimeIndexes(ctx context.Context) ([]string, error) {
	var out []string
	for _, src := range [][2]string{
		{d.cfg.Audit.Table, d.cfg.Audit.CreatedAtColumn},
		{d.cfg.Messages.Table, d.cfg.Messages.CreatedAtColumn},
	} {
		idx, err := timeIndex(ctx, d.db, src[0], src[1])
		if err != nil {
			return nil, err
		}
		if idx == "" {
			w := missingIndexWarning(src[0], src[1])
			d.log.WarnContext(ctx, "daily_stats: missing index", "warning", w)
			out = append(out, w)
		}
	}
	return out, nil
}

func (d *DailyStats) measure(ctx context.Context, from, to time.Time, res *DailyStatsResult) error {
	tx, err := d.db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	for _, s := range []struct {
		name string
		sql  string
		args []any
		dst  *int64
	}{
		{"total users", d.q.TotalUsers, []any{to}, &res.TotalUsers},
		{"new users", d.q.NewUsers, []any{from, to}, &res.NewUsers},
		{"dau", d.q.DAU, []any{from, to}, &res.DAU},
		{"messages", d.q.Messages, []any{from, to}, &res.Messages},
		{"storage added", d.q.StorageAdded, []any{from, to}, &res.StorageAddedBytes},
		{"storage freed", d.q.StorageFreed, []any{from, to}, &res.StorageFreedBytes},
	} {
		if err := tx.QueryRow(ctx, s.sql, s.args...).Scan(s.dst); err != nil {
			return sourceError(s.name, err)
		}
	}
	var sec time.Time
	err = tx.QueryRow(ctx, d.q.QPSPeak, from, to).Scan(&sec, &res.APIQPSPeak)
	switch {
	case errors.Is(err, pgx.ErrNoRows): // no calls that day: peak 0
	case err != nil:
		return sourceError("api qps peak", err)
	default:
		sec = sec.UTC()
		res.APIQPSPeakAt = &sec
	}
	return nil
}

// sourceError marks a missing table or column as permanent: retrying cannot create it.
func sourceError(what string, err error) error {
	err = fmt.Errorf("query %s: %w", what, err)
	if isUndefined(err) {
		return job.Discard("source table or column missing", err)
	}
	return err
}
