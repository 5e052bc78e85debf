-- +goose Up
-- Where a scheduled run's message is: the broker and queue the send result named.
-- When that broker leaves the topic's route, the ticker's repair pass republishes its runs at
-- once instead of waiting overdue_after; msg_queue is -1 when unknown (rows from before).
ALTER TABLE job_runs ADD COLUMN msg_broker text NOT NULL DEFAULT '',
    ADD COLUMN msg_queue int NOT NULL DEFAULT -1;
-- The repair pass asks, every repair_interval, which brokers hold waiting runs and which runs a
-- gone broker holds: only scheduled rows, so the index stays as small as the live backlog.
CREATE INDEX job_runs_scheduled_broker ON job_runs (msg_broker, updated_at)
    WHERE status = 'scheduled' AND msg_broker <> '';

-- +goose Down
DROP INDEX job_runs_scheduled_broker;
ALTER TABLE job_runs DROP COLUMN msg_queue, DROP COLUMN msg_broker;
