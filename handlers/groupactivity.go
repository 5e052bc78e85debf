package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatplat/job-service/job"
)

// GroupActivityKind is the job kind of GroupActivity.
const GroupActivityKind = "group_activity"

// GroupActivityPolicy is group_activity's default run policy: the design's Mondays 02:00 (in
// the config's time_zone, whose Monday midnights also bound the week it ranks).
func GroupActivityPolicy() job.Spec {
	return job.Spec{Schedule: "0 0 2 * * MON", Timeout: 20 * time.Minute,
		Misfire: job.MisfireFireOnce, MisfireBound: 24 * time.Hour}
}

// GroupMessagesSource names the chat messages table and the columns the ranking reads.
type GroupMessagesSource struct {
	Table           string `yaml:"table" chat:"messages.table" deprecated:"set chat_schema.messages.table, shared by the jobs"`
	ChannelIDColumn string `yaml:"channel_id_column" chat:"messages.channel_id" deprecated:"set chat_schema.messages.channel_id, shared by the jobs"`
	SenderIDColumn  string `yaml:"sender_id_column" chat:"messages.sender_id" deprecated:"set chat_schema.messages.sender_id, shared by the jobs"`
	CreatedAtColumn string `yaml:"created_at_column" chat:"messages.created_at" deprecated:"set chat_schema.messages.created_at, shared by the jobs"`
	// ReplyToColumn is the column that says a message answers another (NULL otherwise); "-"
	// (the default) for a schema without replies, as chat_schema.sql has none. Replies count
	// as interaction in the score.
	ReplyToColumn string `yaml:"reply_to_column" chat:"messages.reply_to" deprecated:"set chat_schema.messages.reply_to, shared by the jobs"`
}

// ChannelsSource names the channels table and how a group channel is told from a direct one.
type ChannelsSource struct {
	Table      string `yaml:"table" chat:"channels.table" deprecated:"set chat_schema.channels.table, shared by the jobs"`
	IDColumn   string `yaml:"id_column" chat:"channels.id" deprecated:"set chat_schema.channels.id, shared by the jobs"`
	KindColumn string `yaml:"kind_column" chat:"channels.kind" deprecated:"set chat_schema.channels.kind, shared by the jobs"`
	// GroupKind is the kind value of group channels (2 in chat_schema.sql).
	GroupKind int `yaml:"group_kind" chat:"channels.group_kind" deprecated:"set chat_schema.channels.group_kind, shared by the jobs"`
}

// GroupActivityConfig configures the group_activity job. Sources are the chat platform's
// tables (defaults match deploy/local/chat_schema.sql); the output table
// group_activity_rank is the ledger's (migration 00002_reports.sql).
type GroupActivityConfig struct {
	// TimeZone whose Monday midnights bound a week (IANA name): the job's
	// time_zone unless set.
	TimeZone string `yaml:"time_zone" deprecated:"set jobs.group_activity.time_zone; the report follows its job's zone"`
	// Top is how many channels are ranked per week.
	Top int `yaml:"top"`
	// MemberWeight weighs distinct senders in the score (see GroupActivity).
	MemberWeight float64 `yaml:"member_weight"`
	// ReplyWeight weighs replies in the score; they count only with messages.reply_to_column.
	ReplyWeight float64             `yaml:"reply_weight"`
	Messages    GroupMessagesSource `yaml:"messages"`
	Channels    ChannelsSource      `yaml:"channels"`
}

// WithDefaults fills unset fields.
func (c GroupActivityConfig) WithDefaults() GroupActivityConfig {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.TimeZone, "UTC")
	if c.Top == 0 {
		c.Top = 100
	}
	if c.MemberWeight == 0 {
		c.MemberWeight = 5
	}
	if c.ReplyWeight == 0 {
		c.ReplyWeight = 2
	}
	def(&c.Messages.ReplyToColumn, noColumn)
	def(&c.Messages.Table, "chat_messages")
	def(&c.Messages.ChannelIDColumn, "channel_id")
	def(&c.Messages.SenderIDColumn, "sender_id")
	def(&c.Messages.CreatedAtColumn, "created_at")
	def(&c.Channels.Table, "channels")
	def(&c.Channels.IDColumn, "id")
	def(&c.Channels.KindColumn, "kind")
	if c.Channels.GroupKind == 0 {
		c.Channels.GroupKind = 2
	}
	return c
}

// WithTimeZone sets the zone whose Monday midnights bound a week, unless the section names
// one: the ranked week follows the config's top-level time_zone.
func (c GroupActivityConfig) WithTimeZone(zone string) GroupActivityConfig {
	if c.TimeZone == "" {
		c.TimeZone = zone
	}
	return c
}

// Validate names the first bad key.
func (c GroupActivityConfig) Validate() error {
	if _, err := time.LoadLocation(c.TimeZone); err != nil {
		return fmt.Errorf("time_zone: %w", err)
	}
	if c.Top < 1 || c.Top > 10000 {
		return fmt.Errorf("top: %d is outside 1..10000", c.Top)
	}
	if c.MemberWeight < 0 || c.MemberWeight > 1000 {
		return fmt.Errorf("member_weight: %g is outside 0..1000", c.MemberWeight)
	}
	if c.ReplyWeight < 0 || c.ReplyWeight > 1000 {
		return fmt.Errorf("reply_weight: %g is outside 0..1000", c.ReplyWeight)
	}
	msgCols := map[string]string{
		"channel_id_column": c.Messages.ChannelIDColumn, "sender_id_column": c.Messages.SenderIDColumn,
		"created_at_column": c.Messages.CreatedAtColumn}
	if c.Messages.ReplyToColumn != noColumn {
		msgCols["reply_to_column"] = c.Messages.ReplyToColumn
	}
	if err := validateSource("messages", c.Messages.Table, msgCols); err != nil {
		return err
	}
	return validateSource("channels", c.Channels.Table, map[string]string{
		"id_column": c.Channels.IDColumn, "kind_column": c.Channels.KindColumn})
}

var isoWeekPattern = regexp.MustCompile(`^([0-9]{4})-([0-9]{2})$`)

// ParseISOWeek reads "2026-48" (ISO 8601 year and week) and returns the Monday that starts
// it, as a date in UTC. Week 53 is accepted only in years that have one.
func ParseISOWeek(s string) (time.Time, error) {
	m := isoWeekPattern.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, fmt.Errorf("week %q: want YYYY-WW (ISO year and week, 2026-48)", s)
	}
	year, _ := strconv.Atoi(m[1])
	week, _ := strconv.Atoi(m[2])
	// December 28 always lies in the year's last ISO week.
	_, weeks := time.Date(year, 12, 28, 0, 0, 0, 0, time.UTC).ISOWeek()
	if week < 1 || week > weeks {
		return time.Time{}, fmt.Errorf("week %q: ISO year %d has weeks 1..%d", s, year, weeks)
	}
	// January 4 always lies in week 1; its Monday starts the ISO year.
	jan4 := time.Date(year, 1, 4, 0, 0, 0, 0, time.UTC)
	wd := (int(jan4.Weekday()) + 6) % 7 // Monday 0 .. Sunday 6
	return jan4.AddDate(0, 0, -wd+7*(week-1)), nil
}

// ISOWeekLabel formats t's ISO year and week as stat_week ("2026-48").
func ISOWeekLabel(t time.Time) string {
	y, w := t.ISOWeek()
	return fmt.Sprintf("%04d-%02d", y, w)
}

// GroupActivityArgs are the run parameters of group_activity.
type GroupActivityArgs struct {
	// Week ("2026-48") backfills that ISO week; empty means last week in the time zone.
	Week string `json:"week,omitempty"`
}

// Validate refuses a week that does not exist.
func (a *GroupActivityArgs) Validate() error {
	if a.Week == "" {
		return nil
	}
	_, err := ParseISOWeek(a.Week)
	return err
}

// RankedChannel is one row of group_activity_rank.
type RankedChannel struct {
	Rank          int     `json:"rank"`
	ChannelID     int64   `json:"channel_id"`
	Messages      int64   `json:"msg_count"`
	ActiveMembers int64   `json:"active_members"`
	Replies       int64   `json:"replies"`
	Score         float64 `json:"score"`
}

// GroupActivityResult is the run's result JSON.
type GroupActivityResult struct {
	Week     string    `json:"week"`
	TimeZone string    `json:"time_zone"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	// Replaced is how many rows of an earlier run for the week were deleted.
	Replaced int64 `json:"replaced"`
	Ranked   int   `json:"ranked"`
	// Leaders are the first ten ranks (the table has all of them).
	Leaders []RankedChannel `json:"leaders"`
}

// leadersInResult bounds the result JSON; the full ranking is in group_activity_rank.
const leadersInResult = 10

// GroupActivity ranks last ISO week's most active group channels into group_activity_rank.
//
// score = msg_count + member_weight × active_members + reply_weight × replies, rounded to two
// decimals and capped at 99999999.99 (the design's DECIMAL(10,2)); member_weight 5 and
// reply_weight 2 by default. msg_count counts the channel's messages that week (volume);
// active_members its distinct senders and replies its messages answering another
// (interaction; 0 when the schema has no reply column). The member weight makes breadth
// count: a group where 20 people each said a little outranks one where 2 people chatted 90
// messages. Ties go to more messages, then the lower channel id, so the ranking is
// deterministic and a rerun writes identical rows.
type GroupActivity struct {
	db     *pgxpool.Pool
	cfg    GroupActivityConfig
	loc    *time.Location
	now    func() time.Time
	log    *slog.Logger
	insert string
}

// NewGroupActivity returns the group_activity handler.
func NewGroupActivity(db *pgxpool.Pool, cfg GroupActivityConfig, now func() time.Time, log *slog.Logger) (*GroupActivity, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("group_activity config: %w", err)
	}
	loc, _ := time.LoadLocation(cfg.TimeZone)
	m, c := cfg.Messages, cfg.Channels
	mc, ms, mt := col(m.ChannelIDColumn), col(m.SenderIDColumn), col(m.CreatedAtColumn)
	replies := "0::bigint"
	if m.ReplyToColumn != noColumn {
		replies = fmt.Sprintf("count(m.%s)", col(m.ReplyToColumn)) // count(col) skips NULLs
	}
	// $1 stat_week, $2 week start, $3 next week start, $4 group kind, $5 member weight,
	// $6 top, $7 reply weight. The bare time column against placeholders prunes the messages
	// to the week's partitions.
	insert := fmt.Sprintf(`
		WITH act AS (
			SELECT m.%[1]s AS channel_id, count(*) AS msg_count, count(DISTINCT m.%[2]s) AS active_members,
				%[8]s AS replies
			FROM %[4]s m
			WHERE m.%[3]s >= $2 AND m.%[3]s < $3
				AND m.%[1]s IN (SELECT c.%[6]s FROM %[5]s c WHERE c.%[7]s = $4)
			GROUP BY m.%[1]s
		), scored AS (
			SELECT channel_id, msg_count, active_members, replies,
				LEAST(round(msg_count + $5::numeric * active_members + $7::numeric * replies, 2),
					99999999.99)::numeric(10, 2) AS score
			FROM act
		), numbered AS (
			SELECT *, row_number() OVER (ORDER BY score DESC, msg_count DESC, channel_id ASC) AS rank FROM scored
		)
		INSERT INTO group_activity_rank (stat_week, rank, channel_id, msg_count, active_members, replies, score, week_start)
		SELECT $1, rank, channel_id, msg_count, LEAST(active_members, 2147483647)::int, replies, score, $2
		FROM numbered WHERE rank <= $6
		RETURNING rank, channel_id, msg_count, active_members::bigint, replies, score::float8`,
		mc, ms, mt, ident(m.Table), ident(c.Table), col(c.IDColumn), col(c.KindColumn), replies)
	return &GroupActivity{db: db, cfg: cfg, loc: loc, now: now, log: log, insert: insert}, nil
}

// Kind implements Handler.
func (g *GroupActivity) Kind() string { return GroupActivityKind }

// Week returns the ISO week a run reports on: the week parameter, else the week before the
// one holding the run's scheduled time (its occurrence), in the time zone. Never the clock
// (see DailyStats.Day).
func (g *GroupActivity) Week(run *job.Run[GroupActivityArgs]) (label string, from, to time.Time) {
	return reportWeek(run.Args, run.ScheduledAt, g.loc)
}

// Run implements Handler.
func (g *GroupActivity) Run(ctx context.Context, run *job.Run[GroupActivityArgs]) (any, error) {
	week, from, to := g.Week(run)
	res := GroupActivityResult{Week: week, TimeZone: g.cfg.TimeZone, From: from, To: to, Leaders: []RankedChannel{}}
	if err := refuseArchived(ctx, g.db, "group_activity "+week, from, to, g.cfg.Messages.Table); err != nil {
		return res, err
	}
	tx, err := g.db.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	// Two runs of one week at once would both delete and then collide on insert; they take
	// turns instead.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('group_activity_rank'), hashtext($1))`, week); err != nil {
		return res, fmt.Errorf("lock week %s: %w", week, err)
	}
	tag, err := tx.Exec(ctx, `DELETE FROM group_activity_rank WHERE stat_week = $1`, week)
	if err != nil {
		return res, fmt.Errorf("delete week %s: %w", week, err)
	}
	res.Replaced = tag.RowsAffected()
	rows, err := tx.Query(ctx, g.insert, week, from, to, g.cfg.Channels.GroupKind, g.cfg.MemberWeight, g.cfg.Top,
		g.cfg.ReplyWeight)
	if err != nil {
		return res, sourceError("rank week "+week, err)
	}
	ranked, err := pgx.CollectRows(rows, pgx.RowToStructByPos[RankedChannel])
	if err != nil {
		return res, sourceError("rank week "+week, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("commit week %s: %w", week, err)
	}
	res.Ranked = len(ranked)
	// RETURNING order is not guaranteed; the result lists ranks in order.
	slices.SortFunc(ranked, func(a, b RankedChannel) int { return a.Rank - b.Rank })
	res.Leaders = ranked[:min(len(ranked), leadersInResult)]
	g.log.InfoContext(ctx, "group activity ranked", "week", week, "ranked", res.Ranked, "replaced", res.Replaced)
	return res, nil
}
