package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/sqlident"
)

// MsgGapKind is the job kind of MsgGap.
const MsgGapKind = "msg_gap_check"

// MsgGapPolicy is msg_gap_check's default run policy: the design's every 10 minutes. A missed
// occurrence is skipped: the next one looks at the same window.
func MsgGapPolicy() job.Spec {
	return job.Spec{Schedule: "0 */10 * * * *", Timeout: 2 * time.Minute, Misfire: job.MisfireSkip}
}

// MsgGapConfig configures the msg_gap_check job.
type MsgGapConfig struct {
	// Table holds the messages, "table" or "schema.table"; range-partitioned by TimeColumn
	// so the window prunes to one or two partitions.
	Table         string `yaml:"table" chat:"messages.table" deprecated:"set chat_schema.messages.table, shared by the jobs"`
	ChannelColumn string `yaml:"channel_column" chat:"messages.channel_id" deprecated:"set chat_schema.messages.channel_id, shared by the jobs"`
	SeqColumn     string `yaml:"seq_column" chat:"messages.seq" deprecated:"set chat_schema.messages.seq, shared by the jobs"`
	TimeColumn    string `yaml:"time_column" chat:"messages.created_at" deprecated:"set chat_schema.messages.created_at, shared by the jobs"`
	// Window is how far back each run looks (by TimeColumn).
	Window time.Duration `yaml:"window"`
	// Settle: a gap whose next message is younger than this may be a transaction still in
	// flight (seq taken, not yet committed) and is not reported yet.
	Settle time.Duration `yaml:"settle"`
	// BoundaryLookback: for the first message of a channel in the window, the message before
	// it is looked for this far before the window, so a gap across the window's start is
	// found. Beyond it, the first message is taken as is.
	BoundaryLookback time.Duration `yaml:"boundary_lookback"`
	// MaxChannels and MaxRanges cap what the result lists (channels, and ranges per channel);
	// the totals are always exact.
	MaxChannels int `yaml:"max_channels"`
	MaxRanges   int `yaml:"max_ranges"`
	// WorkMem is the query's work_mem (set for its transaction only): enough to sort the
	// window's rows in memory, so Postgres sorts a sequential scan instead of walking the
	// whole partition through the (channel, seq) index.
	WorkMem string `yaml:"work_mem"`
	// Events publishes each persistent gap the result lists as a repair event (off by default).
	Events GapEventsConfig `yaml:"repair_events"`
}

var workMemPattern = regexp.MustCompile(`^[1-9][0-9]{0,6}(kB|MB|GB)$`)

// WithDefaults fills unset fields.
func (c MsgGapConfig) WithDefaults() MsgGapConfig {
	if c.Table == "" {
		c.Table = "chat_messages"
	}
	if c.ChannelColumn == "" {
		c.ChannelColumn = "channel_id"
	}
	if c.SeqColumn == "" {
		c.SeqColumn = "seq"
	}
	if c.TimeColumn == "" {
		c.TimeColumn = "created_at"
	}
	if c.Window == 0 {
		c.Window = time.Hour
	}
	if c.Settle == 0 {
		c.Settle = time.Minute
	}
	if c.BoundaryLookback == 0 {
		c.BoundaryLookback = 24 * time.Hour
	}
	if c.MaxChannels == 0 {
		c.MaxChannels = 50
	}
	if c.MaxRanges == 0 {
		c.MaxRanges = 20
	}
	if c.WorkMem == "" {
		c.WorkMem = "64MB"
	}
	c.Events = c.Events.WithDefaults()
	return c
}

// Validate names the first bad key.
func (c MsgGapConfig) Validate() error {
	if err := sqlident.ValidateTable(c.Table); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	for key, col := range map[string]string{"channel_column": c.ChannelColumn, "seq_column": c.SeqColumn, "time_column": c.TimeColumn} {
		if !sqlident.Plain(col) {
			return fmt.Errorf("%s: %q is not a plain identifier", key, col)
		}
	}
	switch {
	case c.Window < time.Minute || c.Window > 31*24*time.Hour:
		return fmt.Errorf("window: %s is outside 1m..744h", c.Window)
	case c.Settle < 0 || c.Settle >= c.Window:
		return fmt.Errorf("settle: %s must be at least 0 and below window (%s)", c.Settle, c.Window)
	case c.BoundaryLookback < 0 || c.BoundaryLookback > 31*24*time.Hour:
		return fmt.Errorf("boundary_lookback: %s is outside 0..744h", c.BoundaryLookback)
	case c.MaxChannels < 1 || c.MaxChannels > 10000:
		return fmt.Errorf("max_channels: %d is outside 1..10000", c.MaxChannels)
	case c.MaxRanges < 1 || c.MaxRanges > 10000:
		return fmt.Errorf("max_ranges: %d is outside 1..10000", c.MaxRanges)
	case !workMemPattern.MatchString(c.WorkMem):
		return fmt.Errorf("work_mem: %q is not like 64MB (kB, MB or GB)", c.WorkMem)
	}
	if err := c.Events.Validate(); err != nil {
		return fmt.Errorf("repair_events.%w", err)
	}
	return nil
}

// MsgGapArgs are the run parameters of msg_gap_check; unset fields come from config.
type MsgGapArgs struct {
	// Window overrides the config's window, as a Go duration ("6h").
	Window string `json:"window,omitempty"`
}

// Validate checks the window.
func (a *MsgGapArgs) Validate() error {
	if a.Window == "" {
		return nil
	}
	d, err := time.ParseDuration(a.Window)
	if err != nil {
		return fmt.Errorf("window: %w", err)
	}
	if d < time.Minute || d > 31*24*time.Hour {
		return fmt.Errorf("window: %s is outside 1m..744h", d)
	}
	return nil
}

// MsgGap finds gaps in the per-channel message sequence. Every committed message has the
// next seq of its channel, so a gap that outlives in-flight transactions is a lost message.
// The work is one SQL statement (window functions over the recent partitions); Go only reads
// the summary and the capped list of gaps.
type MsgGap struct {
	db  *pgxpool.Pool
	cfg MsgGapConfig
	now func() time.Time
	log *slog.Logger
	pub EventPublisher // repair events; nil when off
}

// NewMsgGap returns the msg_gap_check handler. pub publishes repair events when
// repair_events is enabled (may be nil otherwise).
func NewMsgGap(db *pgxpool.Pool, cfg MsgGapConfig, pub EventPublisher, now func() time.Time, log *slog.Logger) (*MsgGap, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("msg_gap_check config: %w", err)
	}
	return &MsgGap{db: db, cfg: cfg, pub: pub, now: now, log: log}, nil
}

// Kind implements Handler.
func (h *MsgGap) Kind() string { return MsgGapKind }

// MsgGapResult is the run's result JSON.
type MsgGapResult struct {
	From            time.Time `json:"from"`
	To              time.Time `json:"to"`
	SettledBefore   time.Time `json:"settled_before"`
	ChannelsChecked int64     `json:"channels_checked"`
	MessagesChecked int64     `json:"messages_checked"`
	// Gaps and ChannelsWithGaps count every persistent gap, listed or not.
	Gaps             int64 `json:"gaps"`
	ChannelsWithGaps int64 `json:"channels_with_gaps"`
	// Pending counts gaps younger than the settle delay: not reported, checked again next run.
	Pending   int64         `json:"pending"`
	Channels  []ChannelGaps `json:"channels,omitempty"`
	Truncated bool          `json:"truncated,omitempty"`
	// EventsPublished counts the repair events sent (repair_events.enabled).
	EventsPublished int `json:"events_published,omitempty"`
	// TimeIndex names the index whose first column is the time column, the one the window
	// scan relies on; empty when the table has none (then IndexWarning says what to create).
	TimeIndex    string `json:"time_index,omitempty"`
	IndexWarning string `json:"index_warning,omitempty"`
}

// ChannelGaps lists the missing ranges of one channel.
type ChannelGaps struct {
	Channel int64      `json:"channel"`
	Missing []SeqRange `json:"missing"`
}

// SeqRange is a run of missing seq values, both ends included.
type SeqRange struct {
	From int64 `json:"from"`
	To   int64 `json:"to"`
	// SeenAt is when the message after the gap was written.
	SeenAt time.Time `json:"seen_at"`
}

// msgGapSQL finds the gaps in one statement. win numbers each channel's messages of the
// window by seq; a gap inside the window is a row whose seq jumps past lag(seq) + 1. A
// channel's first message in the window is compared with its predecessor before the window
// (an index probe on (channel, seq) per channel, pruned to the lookback's partitions).
const msgGapSQL = `
WITH win AS MATERIALIZED (
	SELECT %[2]s AS channel_id, %[3]s AS seq, %[4]s AS at,
		lag(%[3]s) OVER w AS prev_seq,
		row_number() OVER w AS rn
	FROM %[1]s
	WHERE %[4]s >= $1 AND %[4]s < $2
	WINDOW w AS (PARTITION BY %[2]s ORDER BY %[3]s)
),
gaps AS MATERIALIZED (
	SELECT channel_id, prev_seq + 1 AS gap_from, seq - 1 AS gap_to, at
	FROM win WHERE seq > prev_seq + 1
	UNION ALL
	SELECT f.channel_id, b.seq + 1, f.seq - 1, f.at
	FROM win f
	CROSS JOIN LATERAL (
		SELECT m.%[3]s AS seq FROM %[1]s m
		WHERE m.%[2]s = f.channel_id AND m.%[3]s < f.seq
			AND m.%[4]s >= $3 AND m.%[4]s < $1
		ORDER BY m.%[3]s DESC LIMIT 1
	) b
	WHERE f.rn = 1 AND f.seq > b.seq + 1
),
persistent AS (
	SELECT g.*, dense_rank() OVER (ORDER BY channel_id) AS ch_rank,
		row_number() OVER (PARTITION BY channel_id ORDER BY gap_from) AS g_rank
	FROM gaps g WHERE at <= $4
),
counts AS (
	SELECT count(*) FILTER (WHERE rn = 1) AS channels, count(*) AS messages FROM win
)
SELECT
	(SELECT channels FROM counts),
	(SELECT messages FROM counts),
	(SELECT count(*) FROM persistent),
	(SELECT count(DISTINCT channel_id) FROM persistent),
	(SELECT count(*) FROM gaps WHERE at > $4),
	(SELECT COALESCE(json_agg(json_build_object('channel', channel_id, 'from', gap_from, 'to', gap_to, 'seen_at', at)
		ORDER BY channel_id, gap_from), '[]'::json)
	 FROM persistent WHERE ch_rank <= $5 AND g_rank <= $6)`

func (h *MsgGap) query() string {
	return fmt.Sprintf(msgGapSQL, pgx.Identifier(strings.Split(h.cfg.Table, ".")).Sanitize(),
		pgx.Identifier{h.cfg.ChannelColumn}.Sanitize(), pgx.Identifier{h.cfg.SeqColumn}.Sanitize(),
		pgx.Identifier{h.cfg.TimeColumn}.Sanitize())
}

// Run implements Handler.
func (h *MsgGap) Run(ctx context.Context, run *job.Run[MsgGapArgs]) (any, error) {
	window := h.cfg.Window
	if run.Args.Window != "" {
		window, _ = time.ParseDuration(run.Args.Window) // validated
	}
	now := h.now().UTC()
	res := MsgGapResult{From: now.Add(-window), To: now, SettledBefore: now.Add(-h.cfg.Settle)}
	var listed []struct {
		Channel int64     `json:"channel"`
		From    int64     `json:"from"`
		To      int64     `json:"to"`
		SeenAt  time.Time `json:"seen_at"`
	}
	var raw []byte
	err := pgx.BeginTxFunc(ctx, h.db, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		idx, err := timeIndex(ctx, tx, h.cfg.Table, h.cfg.TimeColumn)
		if err != nil {
			return err
		}
		res.TimeIndex = idx
		if idx == "" {
			res.IndexWarning = missingIndexWarning(h.cfg.Table, h.cfg.TimeColumn)
			h.log.WarnContext(ctx, "message table has no time index", "table", h.cfg.Table, "column", h.cfg.TimeColumn)
		}
		for _, kv := range msgGapSettings(h.cfg) {
			if _, err := tx.Exec(ctx, `SELECT set_config($1, $2, true)`, kv[0], kv[1]); err != nil {
				return fmt.Errorf("set %s: %w", kv[0], err)
			}
		}
		return tx.QueryRow(ctx, h.query(), res.From, res.To, res.From.Add(-h.cfg.BoundaryLookback),
			res.SettledBefore, h.cfg.MaxChannels, h.cfg.MaxRanges).Scan(
			&res.ChannelsChecked, &res.MessagesChecked, &res.Gaps, &res.ChannelsWithGaps, &res.Pending, &raw)
	})
	if err != nil {
		return res, fmt.Errorf("find gaps in %s: %w", h.cfg.Table, err)
	}
	if err := json.Unmarshal(raw, &listed); err != nil {
		return res, fmt.Errorf("decode gaps: %w", err)
	}
	for _, g := range listed {
		if n := len(res.Channels); n == 0 || res.Channels[n-1].Channel != g.Channel {
			res.Channels = append(res.Channels, ChannelGaps{Channel: g.Channel})
		}
		c := &res.Channels[len(res.Channels)-1]
		c.Missing = append(c.Missing, SeqRange{From: g.From, To: g.To, SeenAt: g.SeenAt})
	}
	res.Truncated = int64(len(listed)) < res.Gaps
	h.log.InfoContext(ctx, "message sequences checked", "channels", res.ChannelsChecked, "messages", res.MessagesChecked,
		"gaps", res.Gaps, "channels_with_gaps", res.ChannelsWithGaps, "pending", res.Pending)
	if res.Gaps == 0 {
		return res, nil
	}
	if res.EventsPublished, err = h.publishGaps(ctx, run.RunKey, res); err != nil {
		return res, err
	}
	desc := describeGaps(res)
	// Lost messages do not come back on retry; the run fails at once and alerts. The
	// fingerprint is the list of gaps, so the runs every few minutes that see the same gaps
	// raise one alert, and a new gap raises another.
	return res, job.Discard("sequence gaps", job.WithProblem("gaps:"+desc, errors.New(desc)))
}

func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// describeGaps says "2 gaps in 1 channel: channel 7 missing 4-5, 9", listing what the result
// lists.
func describeGaps(res MsgGapResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s in %s", plural(res.Gaps, "gap"), plural(res.ChannelsWithGaps, "channel"))
	for i, c := range res.Channels {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%schannel %d missing ", sep, c.Channel)
		for j, r := range c.Missing {
			if j > 0 {
				b.WriteString(", ")
			}
			if r.From == r.To {
				fmt.Fprintf(&b, "%d", r.From)
			} else {
				fmt.Fprintf(&b, "%d-%d", r.From, r.To)
			}
		}
	}
	if res.Truncated {
		b.WriteString("; more not listed")
	}
	return b.String()
}
