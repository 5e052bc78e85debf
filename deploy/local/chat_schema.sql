-- The chat platform's own tables, as job-service sees them. job-service does not own these:
-- this file exists so tests and the demo have the same shape as production. Unqualified names:
-- it is applied into whatever schema the search_path names (tests use one schema each).

CREATE TABLE IF NOT EXISTS users (
    id          bigint      PRIMARY KEY,
    username    text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

CREATE TABLE IF NOT EXISTS channels (
    id          bigint      PRIMARY KEY,
    name        text        NOT NULL,
    kind        smallint    NOT NULL DEFAULT 2,  -- 1 direct, 2 group
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS channel_members (
    channel_id  bigint      NOT NULL,
    user_id     bigint      NOT NULL,
    joined_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, user_id)
);

-- Messages are range-partitioned by month on created_at; seq is per channel and gap-free when
-- every transaction commits. The DEFAULT partition catches rows no monthly partition covers.
CREATE TABLE IF NOT EXISTS chat_messages (
    id          bigint      NOT NULL,
    channel_id  bigint      NOT NULL,
    seq         bigint      NOT NULL,
    sender_id   bigint      NOT NULL,
    body        text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX IF NOT EXISTS chat_messages_channel_seq ON chat_messages (channel_id, seq);
-- msg_gap_check reads the last hour by created_at every 10 minutes; without this index each run
-- reads the whole month's partition (the primary key leads with id). The job reports its absence.
CREATE INDEX IF NOT EXISTS chat_messages_created_at ON chat_messages (created_at);
CREATE TABLE IF NOT EXISTS chat_messages_default PARTITION OF chat_messages DEFAULT;

CREATE TABLE IF NOT EXISTS chat_inbox (
    user_id     bigint      NOT NULL,
    channel_id  bigint      NOT NULL,
    message_id  bigint      NOT NULL,
    created_at  timestamptz NOT NULL,
    read_at     timestamptz,
    PRIMARY KEY (user_id, message_id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE IF NOT EXISTS chat_inbox_default PARTITION OF chat_inbox DEFAULT;

-- One row per API call; partitioned by month like the messages.
CREATE TABLE IF NOT EXISTS audit_logs (
    id          bigint      GENERATED ALWAYS AS IDENTITY,
    user_id     bigint,
    action      text        NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE IF NOT EXISTS audit_logs_default PARTITION OF audit_logs DEFAULT;
-- daily_stats reads one day of audit_logs (DAU, QPS peak); without an index on created_at each
-- run reads the whole month's partition twice. Rows arrive in time order, so BRIN serves and
-- stays tiny (BENCHMARKS.md, "Jobs at production volume").
CREATE INDEX IF NOT EXISTS audit_logs_created_at ON audit_logs USING brin (created_at);

-- Files: status 1 = active, 2 = deleted by the user (eligible for GC once ref_count = 0).
CREATE TABLE IF NOT EXISTS file_metadata (
    id          bigint      PRIMARY KEY,
    file_hash   text        NOT NULL,
    bucket      text        NOT NULL,
    object_path text        NOT NULL,
    size_bytes  bigint      NOT NULL DEFAULT 0,
    ref_count   int         NOT NULL DEFAULT 1,
    status      smallint    NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS file_metadata_gc ON file_metadata (id) WHERE status = 2 AND ref_count = 0;
-- The file GCs ask, for every batch of files they collect, whether another row names the same
-- object (deduplicated uploads); without this index each batch reads the whole table.
-- file_gc reports its absence.
CREATE INDEX IF NOT EXISTS file_metadata_object ON file_metadata (bucket, object_path);
