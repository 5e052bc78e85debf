-- +goose Up
-- The report jobs' output (handlers/dailystats.go, handlers/groupactivity.go). Both are
-- written so that rerunning a report replaces its rows: daily_stats is upserted on stat_date,
-- group_activity_rank has one week's rows deleted and re-inserted in one transaction.
-- IF NOT EXISTS: where the platform's admin-service created both tables from the design's DDL
-- first, this migration leaves them alone and 00010_design_reports.sql adopts them. Databases
-- that took this migration as first written get the design's columns from 00010 too.

-- One row per calendar day in the job's time zone.
CREATE TABLE IF NOT EXISTS daily_stats (
    stat_date            date        PRIMARY KEY,
    time_zone            text        NOT NULL,           -- whose midnight bounds the day
    total_users          bigint      NOT NULL,           -- users existing at the end of the day
    dau                  bigint      NOT NULL,           -- distinct user ids in audit_logs that day
    messages             bigint      NOT NULL,           -- chat messages created that day
    new_users            bigint      NOT NULL,           -- users created that day
    storage_added_bytes  bigint      NOT NULL,           -- size of files created that day
    api_qps_peak         bigint      NOT NULL,           -- calls in the day's busiest second
    api_qps_peak_at      timestamptz,                    -- that second; NULL when no calls
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- The most active group channels of one ISO week, ranked by score (see groupactivity.go).
CREATE TABLE IF NOT EXISTS group_activity_rank (
    stat_week       text        NOT NULL CHECK (stat_week ~ '^[0-9]{4}-[0-9]{2}$'),  -- ISO year-week, 2026-48
    rank            int         NOT NULL CHECK (rank >= 1),
    channel_id      bigint      NOT NULL,
    messages        bigint      NOT NULL,
    active_members  bigint      NOT NULL,           -- distinct senders that week
    score           bigint      NOT NULL,           -- messages + 5 * active_members
    week_start      timestamptz NOT NULL,           -- Monday 00:00 in the job's time zone
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stat_week, rank),
    CONSTRAINT group_activity_rank_channel UNIQUE (stat_week, channel_id)
);

-- +goose Down
DROP TABLE group_activity_rank;
DROP TABLE daily_stats;
