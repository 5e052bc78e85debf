-- +goose Up
-- How many times the ticker's repair pass published a run again: a run that keeps
-- coming back (its message rejected, its kind gone, its node dying each time) is given up and
-- alerted on instead of being republished forever.
ALTER TABLE job_runs ADD COLUMN republished int NOT NULL DEFAULT 0;
-- The repair pass looks for interrupted runs too (stuck when their message was lost).
CREATE INDEX job_runs_stuck ON job_runs (updated_at) WHERE status IN ('interrupted', 'retrying', 'abandoned');

-- +goose Down
DROP INDEX job_runs_stuck;
ALTER TABLE job_runs DROP COLUMN republished;
