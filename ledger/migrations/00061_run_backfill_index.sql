-- +goose NO TRANSACTION
-- +goose Up
-- jobctl runs --backfill ID and a backfill's progress. CONCURRENTLY: job_runs takes claims
-- from running nodes (of this release and the previous one) while the index builds.
CREATE INDEX CONCURRENTLY IF NOT EXISTS job_runs_backfill ON job_runs (backfill_id, logical_start)
    WHERE backfill_id IS NOT NULL;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS job_runs_backfill;
