-- +goose Up
-- Which run and attempt wrote a tombstone, so a retry of that run (a later attempt: the
-- earlier one is fenced and can no longer record anything) finishes it at once instead of
-- waiting for it to age past s3_timeout. NULL for tombstones written by the event GC and by
-- nodes of an earlier release: they are finished by age, as before.
ALTER TABLE gc_tombstones ADD COLUMN run_id bigint, ADD COLUMN attempt int;
CREATE INDEX gc_tombstones_run ON gc_tombstones (run_id, file_id) WHERE run_id IS NOT NULL;

-- +goose Down
DROP INDEX gc_tombstones_run;
ALTER TABLE gc_tombstones DROP COLUMN attempt, DROP COLUMN run_id;
