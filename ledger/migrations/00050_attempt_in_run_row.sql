-- +goose Up
-- The run row carries its latest attempt (attempt, node, msg_id, started_at, status, error), so
-- a run whose first attempt ends it writes one row, not two. Attempts that a later one
-- replaced (retried, interrupted, abandoned) move to job_past_attempts when the later one is
-- claimed, which is rare. The view job_attempts shows both, one row per attempt, as the table
-- of that name did. Nodes of an older release write job_attempts and fail their claims (the
-- broker redelivers) until they are replaced: upgrade all nodes together.
ALTER TABLE job_attempts RENAME TO job_past_attempts;
ALTER TABLE job_past_attempts RENAME CONSTRAINT job_attempts_pkey TO job_past_attempts_pkey;
ALTER TABLE job_past_attempts RENAME CONSTRAINT job_attempts_run_id_fkey TO job_past_attempts_run_id_fkey;
-- A running attempt's own row would never be finished now (outcomes update the run row only),
-- so its run row speaks for it.
DELETE FROM job_past_attempts p USING job_runs r
WHERE p.run_id = r.id AND p.attempt = r.attempt AND r.status = 'running' AND p.outcome = 'running';
-- Rows kept from before this migration may repeat the run's latest attempt; the kept row wins.
CREATE VIEW job_attempts AS
SELECT run_id, attempt, node, msg_id, started_at, finished_at, outcome, error FROM job_past_attempts
UNION ALL
SELECT r.id, r.attempt, r.node, r.msg_id, r.started_at,
    CASE WHEN r.status = 'running' THEN NULL ELSE coalesce(r.finished_at, r.updated_at) END,
    r.status, r.error
FROM job_runs r
WHERE r.attempt > 0 AND r.started_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM job_past_attempts p WHERE p.run_id = r.id AND p.attempt = r.attempt);

-- +goose Down
DROP VIEW job_attempts;
INSERT INTO job_past_attempts (run_id, attempt, node, msg_id, started_at, finished_at, outcome, error)
SELECT r.id, r.attempt, r.node, r.msg_id, r.started_at,
    CASE WHEN r.status = 'running' THEN NULL ELSE coalesce(r.finished_at, r.updated_at) END,
    r.status, r.error
FROM job_runs r WHERE r.attempt > 0 AND r.started_at IS NOT NULL
ON CONFLICT (run_id, attempt) DO NOTHING;
ALTER TABLE job_past_attempts RENAME CONSTRAINT job_past_attempts_run_id_fkey TO job_attempts_run_id_fkey;
ALTER TABLE job_past_attempts RENAME CONSTRAINT job_past_attempts_pkey TO job_attempts_pkey;
ALTER TABLE job_past_attempts RENAME TO job_attempts;
