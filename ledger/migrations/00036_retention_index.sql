-- +goose NO TRANSACTION
-- +goose Up
-- The retention job deletes gc_log rows by age in small batches; without this index every
-- batch would scan the table. CONCURRENTLY: a production gc_log may be large and must keep
-- taking inserts while the index builds.
CREATE INDEX CONCURRENTLY IF NOT EXISTS gc_log_deleted_at ON gc_log (deleted_at);
-- Finished runs are found by age through job_runs_created; node rows by heartbeat.
CREATE INDEX CONCURRENTLY IF NOT EXISTS job_nodes_heartbeat ON job_nodes (heartbeat_at);

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS job_nodes_heartbeat;
DROP INDEX CONCURRENTLY IF EXISTS gc_log_deleted_at;
