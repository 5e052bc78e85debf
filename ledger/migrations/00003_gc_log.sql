-- +goose Up
-- One row per file the GC removed (daily sweep or ref_count=0 event), so an operator can
-- answer "what happened to this file?" long after its file_metadata row is gone. run_id points
-- at the job_runs row of the sweep shard or event batch that removed it.
CREATE TABLE gc_log (
    id          bigserial   PRIMARY KEY,
    file_id     bigint      NOT NULL,
    file_hash   text        NOT NULL,
    bucket      text        NOT NULL,
    object_path text        NOT NULL,
    bytes       bigint      NOT NULL DEFAULT 0,
    -- missing: the object was already gone when the GC came (the row was still removed).
    object_missing boolean  NOT NULL DEFAULT false,
    deleted_at  timestamptz NOT NULL DEFAULT now(),
    run_id      bigint      REFERENCES job_runs (id) ON DELETE SET NULL
);
-- jobctl gc-log --file ID
CREATE INDEX gc_log_file ON gc_log (file_id, deleted_at DESC);
-- jobctl gc-log --hash H
CREATE INDEX gc_log_hash ON gc_log (file_hash);
CREATE INDEX gc_log_run ON gc_log (run_id);

-- +goose Down
DROP TABLE gc_log;
