-- +goose Up
-- The manifest of the partition_archive job: one row per monthly partition moved (or being
-- moved) from Postgres to S3. The row is the state machine of the move, so a node killed at
-- any step resumes from the last completed one:
--   exporting -> exported -> verified -> detached -> dropped
-- plus restored (jobctl archive restore brought it back) and conflict (the partition changed
-- after its export was verified; it is never dropped, an operator decides).
-- The object key is fixed when the row is created and never changes: a partition is only
-- ever exported into that one object.
CREATE TABLE partition_archives (
    id               bigserial   PRIMARY KEY,
    parent_schema    text        NOT NULL,
    parent_table     text        NOT NULL,
    partition_name   text        NOT NULL,
    key_column       text        NOT NULL,
    key_type         text        NOT NULL,
    -- Bounds as Postgres printed them in FOR VALUES FROM (..) TO (..), unquoted literals.
    range_from       text        NOT NULL,
    range_to         text        NOT NULL,
    -- Columns as archived: [{"name": .., "type": ..}], in the object's column order.
    columns          jsonb       NOT NULL,
    state            text        NOT NULL CHECK (state IN
                         ('exporting', 'exported', 'verified', 'detached', 'dropped', 'restored', 'conflict')),
    bucket           text        NOT NULL,
    object_key       text        NOT NULL,
    format           text        NOT NULL,
    rows             bigint,
    raw_bytes        bigint,
    bytes            bigint,
    -- content_checksum: order-independent sum of per-row SHA-256 (see archive/checksum.go);
    -- object_sha256: of the stored (compressed) object.
    content_checksum text,
    object_sha256    text,
    run_id           bigint      REFERENCES job_runs (id) ON DELETE SET NULL,
    attempts         int         NOT NULL DEFAULT 0,
    error            text        NOT NULL DEFAULT '',
    restored_as      text        NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    exported_at      timestamptz,
    verified_at      timestamptz,
    detached_at      timestamptz,
    dropped_at       timestamptz,
    restored_at      timestamptz,
    UNIQUE (parent_schema, parent_table, partition_name),
    UNIQUE (bucket, object_key)
);
CREATE INDEX partition_archives_state ON partition_archives (state) WHERE state NOT IN ('dropped', 'restored');

-- +goose Down
DROP TABLE partition_archives;
