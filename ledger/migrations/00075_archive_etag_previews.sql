-- +goose Up
-- partition_archive reads the object's size and ETag again just before it drops a partition:
-- an object replaced after its verify (a late upload of an older copy) is exported again
-- instead of being left as the only copy. NULL on rows verified before this column existed:
-- their drop step reads the object back in full instead.
ALTER TABLE partition_archives ADD COLUMN object_etag text;
-- The first run of a new deployment (nothing in partition_archives, no preview yet) only
-- previews what it would archive and drop, with sizes; the preview is kept here, and its
-- existence is what makes the next run act.
CREATE TABLE partition_archive_previews (
    id         bigserial   PRIMARY KEY,
    run_id     bigint      REFERENCES job_runs (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    plan       jsonb       NOT NULL
);

-- +goose Down
DROP TABLE partition_archive_previews;
ALTER TABLE partition_archives DROP COLUMN object_etag;
