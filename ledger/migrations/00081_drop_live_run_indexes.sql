-- +goose NO TRANSACTION
-- +goose Up
-- Live and stuck runs are found through job_runs_inflight (00080) now. Without these indexes
-- no column a take-over, heartbeat or outcome changes is indexed, so those updates are HOT.
-- CONCURRENTLY: job_runs keeps taking claims from running nodes while each goes. A node of the
-- previous release still runs its own repair queries, which then read job_runs instead.
DROP INDEX CONCURRENTLY IF EXISTS job_runs_live;
DROP INDEX CONCURRENTLY IF EXISTS job_runs_stuck;
DROP INDEX CONCURRENTLY IF EXISTS job_runs_scheduled_broker;

-- +goose Down
CREATE INDEX CONCURRENTLY IF NOT EXISTS job_runs_scheduled_broker ON job_runs (msg_broker, updated_at)
    WHERE status = 'scheduled' AND msg_broker <> '';
CREATE INDEX CONCURRENTLY IF NOT EXISTS job_runs_stuck ON job_runs (updated_at)
    WHERE status IN ('interrupted', 'retrying', 'abandoned');
CREATE INDEX CONCURRENTLY IF NOT EXISTS job_runs_live ON job_runs (status, heartbeat_at)
    WHERE status IN ('scheduled', 'running', 'retrying');
