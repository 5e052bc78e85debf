-- +goose Up
-- The report tables become exactly the design's (original-design §5), which the platform's
-- admin-service reads: the design's columns first, in its order, names and types; ours follow.
-- Three starting points, all ending in the same shape and none failing:
--   * empty database: 00002 made our first shape, rebuilt below like any other;
--   * admin-service created both tables from the design's DDL first (00002 skipped them):
--     adopted as they are, our columns added;
--   * our first shape (stat_date primary key, dau, messages, ...): rebuilt in the design's
--     column order, every row kept.
-- storage_usage is the day's storage increment: bytes of files added minus bytes the GC freed
-- (gc_log) that day. Rows of the first shape only knew the bytes added; the freed bytes of
-- their day are taken from gc_log here.

-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
               AND table_name = 'daily_stats' AND column_name = 'dau') THEN
        ALTER TABLE daily_stats RENAME TO daily_stats_v1;
        ALTER TABLE daily_stats_v1 RENAME CONSTRAINT daily_stats_pkey TO daily_stats_v1_pkey;
    END IF;
    IF EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
               AND table_name = 'group_activity_rank' AND column_name = 'messages') THEN
        ALTER TABLE group_activity_rank RENAME TO group_activity_rank_v1;
        ALTER TABLE group_activity_rank_v1 RENAME CONSTRAINT group_activity_rank_pkey TO group_activity_rank_v1_pkey;
        ALTER TABLE group_activity_rank_v1 RENAME CONSTRAINT group_activity_rank_channel TO group_activity_rank_v1_channel;
    END IF;
END
$$;
-- +goose StatementEnd

-- The design's DDL, verbatim.
CREATE TABLE IF NOT EXISTS daily_stats (
    id BIGSERIAL PRIMARY KEY,
    stat_date DATE NOT NULL,
    total_users BIGINT DEFAULT 0,
    active_users BIGINT DEFAULT 0,
    total_msgs BIGINT DEFAULT 0,
    storage_usage BIGINT DEFAULT 0,
    api_qps_peak INT DEFAULT 0,
    created_at TIMESTAMPTZ DEFAULT NOW(),
    UNIQUE(stat_date)
);

CREATE TABLE IF NOT EXISTS group_activity_rank (
    id BIGSERIAL PRIMARY KEY,
    stat_week VARCHAR(10),
    channel_id BIGINT NOT NULL,
    msg_count BIGINT,
    active_members INT,
    score DECIMAL(10, 2),
    rank INT,
    created_at TIMESTAMPTZ DEFAULT NOW()
);

-- Ours, after the design's. Nullable with defaults, so adopting a table full of
-- admin-service's rows cannot fail.
ALTER TABLE daily_stats
    ADD COLUMN IF NOT EXISTS time_zone           text,                 -- whose midnight bounds the day
    ADD COLUMN IF NOT EXISTS new_users           bigint DEFAULT 0,     -- users created that day
    ADD COLUMN IF NOT EXISTS storage_added_bytes bigint DEFAULT 0,     -- size of files created that day
    ADD COLUMN IF NOT EXISTS storage_freed_bytes bigint DEFAULT 0,     -- bytes the GC freed that day (gc_log)
    ADD COLUMN IF NOT EXISTS api_qps_peak_at     timestamptz,          -- the busiest second; NULL when no calls
    ADD COLUMN IF NOT EXISTS updated_at          timestamptz DEFAULT now();

ALTER TABLE group_activity_rank
    ADD COLUMN IF NOT EXISTS replies     bigint DEFAULT 0,   -- messages answering another (0 without a reply column)
    ADD COLUMN IF NOT EXISTS week_start  timestamptz,        -- Monday 00:00 in the job's time zone
    ADD COLUMN IF NOT EXISTS updated_at  timestamptz DEFAULT now();

-- The job replaces one week's rows at a time.
CREATE INDEX IF NOT EXISTS group_activity_rank_week ON group_activity_rank (stat_week, rank);

-- +goose StatementBegin
DO $$
BEGIN
    IF to_regclass('daily_stats_v1') IS NOT NULL THEN
        INSERT INTO daily_stats (stat_date, total_users, active_users, total_msgs, storage_usage,
            api_qps_peak, created_at, time_zone, new_users, storage_added_bytes, storage_freed_bytes,
            api_qps_peak_at, updated_at)
        SELECT o.stat_date, o.total_users, o.dau, o.messages, o.storage_added_bytes - f.freed,
            LEAST(o.api_qps_peak, 2147483647)::int, o.created_at, o.time_zone, o.new_users,
            o.storage_added_bytes, f.freed, o.api_qps_peak_at, o.updated_at
        FROM daily_stats_v1 o
        CROSS JOIN LATERAL (
            SELECT COALESCE(sum(g.bytes), 0)::bigint AS freed FROM gc_log g
            WHERE NOT g.object_missing AND g.deleted_at >= (o.stat_date::timestamp AT TIME ZONE o.time_zone)
              AND g.deleted_at < ((o.stat_date + 1)::timestamp AT TIME ZONE o.time_zone)) f
        ORDER BY o.stat_date;
        DROP TABLE daily_stats_v1;
    END IF;
    IF to_regclass('group_activity_rank_v1') IS NOT NULL THEN
        INSERT INTO group_activity_rank (stat_week, channel_id, msg_count, active_members, score,
            rank, created_at, replies, week_start, updated_at)
        SELECT stat_week, channel_id, messages, LEAST(active_members, 2147483647)::int,
            LEAST(score, 99999999.99)::numeric(10, 2), rank, created_at, 0, week_start, updated_at
        FROM group_activity_rank_v1 ORDER BY stat_week, rank;
        DROP TABLE group_activity_rank_v1;
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- The design's tables stay: admin-service reads them, and they may predate job-service.
SELECT 1;
