-- +goose Up
-- One row per (job, run_key, shard): the unit that is claimed, retried and reported.
CREATE TABLE job_runs (
    id            bigserial PRIMARY KEY,
    job           text        NOT NULL,
    run_key       text        NOT NULL,
    shard_index   int         NOT NULL DEFAULT 0,
    shard_total   int         NOT NULL DEFAULT 1,
    trigger       text        NOT NULL,
    scheduled_at  timestamptz NOT NULL,
    params        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    requested_by  text        NOT NULL DEFAULT '',
    status        text        NOT NULL,
    attempt       int         NOT NULL DEFAULT 0,
    node          text        NOT NULL DEFAULT '',
    msg_id        text        NOT NULL DEFAULT '',
    started_at    timestamptz,
    finished_at   timestamptz,
    heartbeat_at  timestamptz,
    result        jsonb,
    error         text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT job_runs_status_check CHECK (status IN
        ('scheduled', 'running', 'retrying', 'succeeded', 'failed', 'rejected', 'skipped', 'interrupted', 'abandoned')),
    CONSTRAINT job_runs_shard_check CHECK (shard_index >= 0 AND shard_index < shard_total),
    CONSTRAINT job_runs_key UNIQUE (job, run_key, shard_index)
);
-- jobctl runs --job J, jobctl jobs (last outcome), the console.
CREATE INDEX job_runs_job_created ON job_runs (job, created_at DESC);
-- jobctl runs (all jobs, newest first) and --since.
CREATE INDEX job_runs_created ON job_runs (created_at DESC);
-- The ticker's reaper and backlog look only at live rows; a partial index stays small.
CREATE INDEX job_runs_live ON job_runs (status, heartbeat_at) WHERE status IN ('scheduled', 'running', 'retrying');
-- The ticker's cursor: the last scheduled occurrence of each job.
CREATE INDEX job_runs_schedule_cursor ON job_runs (job, scheduled_at DESC) WHERE trigger = 'schedule';

-- One row per attempt, so a killed or interrupted attempt stays visible after a retry succeeds.
CREATE TABLE job_attempts (
    run_id      bigint      NOT NULL REFERENCES job_runs (id) ON DELETE CASCADE,
    attempt     int         NOT NULL,
    node        text        NOT NULL,
    msg_id      text        NOT NULL DEFAULT '',
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    outcome     text        NOT NULL DEFAULT 'running',
    error       text        NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, attempt)
);

-- Jobs an operator paused; the ticker publishes nothing for them.
CREATE TABLE job_pauses (
    job       text PRIMARY KEY,
    paused_by text        NOT NULL DEFAULT '',
    paused_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE job_pauses;
DROP TABLE job_attempts;
DROP TABLE job_runs;
