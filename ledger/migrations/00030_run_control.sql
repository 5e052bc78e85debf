-- +goose Up
-- Operator control of runs: cancel a running run, retry a finished one, and keep
-- what a handler logged with its run.

-- cancelled: an operator stopped the run (jobctl cancel, the console, the API); terminal.
ALTER TABLE job_runs DROP CONSTRAINT job_runs_status_check;
ALTER TABLE job_runs ADD CONSTRAINT job_runs_status_check CHECK (status IN
    ('scheduled', 'running', 'retrying', 'succeeded', 'failed', 'rejected', 'skipped', 'interrupted', 'abandoned',
     'cancelled'));
-- A cancel request on a running run waits here until the node running it sees it in its next
-- heartbeat (consumer.Processor.Heartbeat) and cancels the handler's context.
ALTER TABLE job_runs ADD COLUMN cancel_requested_by text;
ALTER TABLE job_runs ADD COLUMN cancel_requested_at timestamptz;
-- A retry is a new run (fresh attempts, fresh logs) linked to the run it retries.
ALTER TABLE job_runs ADD COLUMN retry_of bigint REFERENCES job_runs (id) ON DELETE SET NULL;
CREATE INDEX job_runs_retry_of ON job_runs (retry_of) WHERE retry_of IS NOT NULL;

-- The last lines each attempt logged (runlog.Buffer bounds them in memory; the flush deletes
-- lines the bound pushed out). A gap before an attempt's first seq is the truncation mark.
CREATE TABLE job_run_logs (
    id       bigserial   PRIMARY KEY,
    run_id   bigint      NOT NULL REFERENCES job_runs (id) ON DELETE CASCADE,
    attempt  int         NOT NULL,
    seq      int         NOT NULL,            -- 1.. within the attempt
    at       timestamptz NOT NULL,
    level    text        NOT NULL,
    msg      text        NOT NULL,
    attrs    text        NOT NULL DEFAULT ''  -- key=value pairs, as logged
);
CREATE INDEX job_run_logs_run ON job_run_logs (run_id, id);

-- +goose Down
DROP TABLE job_run_logs;
DROP INDEX job_runs_retry_of;
ALTER TABLE job_runs DROP COLUMN retry_of;
ALTER TABLE job_runs DROP COLUMN cancel_requested_at;
ALTER TABLE job_runs DROP COLUMN cancel_requested_by;
ALTER TABLE job_runs DROP CONSTRAINT job_runs_status_check;
ALTER TABLE job_runs ADD CONSTRAINT job_runs_status_check CHECK (status IN
    ('scheduled', 'running', 'retrying', 'succeeded', 'failed', 'rejected', 'skipped', 'interrupted', 'abandoned'));
