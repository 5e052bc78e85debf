-- +goose Up
-- What a run stands for: the interval of time it reports on or maintains (daily_stats' day,
-- group_activity's ISO week, a scheduled fire's occurrence), decided when the run is recorded
-- (fire, force, retry, backfill) and kept by a retry, so a run repeated days later does the
-- same work. Nullable: nodes of the previous release insert rows without it, and such a row
-- stands for what its params and scheduled_at say, as it did then.
ALTER TABLE job_runs ADD COLUMN logical_start timestamptz,
    ADD COLUMN logical_end timestamptz,
    -- the backfill that made this run; NULL for every other run
    ADD COLUMN backfill_id bigint;

-- A backfill: one run per interval of a job between two dates. Re-running the same backfill
-- (same job and range) finds this row again and publishes only the intervals without a run
-- that succeeded or is still going.
CREATE TABLE job_backfills (
    id           bigserial   PRIMARY KEY,
    job          text        NOT NULL,
    range_from   date        NOT NULL,
    range_to     date        NOT NULL,
    params       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    max_active   int         NOT NULL DEFAULT 1,
    requested_by text        NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- set by a cancel of the whole backfill: nothing more is published for it
    cancelled_at timestamptz,
    cancelled_by text        NOT NULL DEFAULT '',
    CONSTRAINT job_backfills_range UNIQUE (job, range_from, range_to, params)
);

-- +goose Down
DROP TABLE job_backfills;
ALTER TABLE job_runs DROP COLUMN backfill_id, DROP COLUMN logical_end, DROP COLUMN logical_start;
