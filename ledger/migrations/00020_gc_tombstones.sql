-- +goose Up
-- Files the GC has committed to removing: their file_metadata row was moved to the
-- collecting status in the same transaction, so the file service can no longer re-reference
-- them, and only then are their objects deleted. A row here whose file still exists is work
-- left by a run that was cancelled, timed out or killed between the two; the next sweep (or
-- the redelivered event batch) finishes it. Removed when the file row is deleted.
CREATE TABLE gc_tombstones (
    file_id       bigint      PRIMARY KEY,
    bucket        text        NOT NULL,
    object_path   text        NOT NULL,
    tombstoned_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gc_tombstones_age ON gc_tombstones (tombstoned_at);

-- +goose Down
DROP TABLE gc_tombstones;
