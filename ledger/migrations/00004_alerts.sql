-- +goose Up
-- Alert de-duplication (package alert): one row per problem and delivery channel. A node
-- sends an alert only if it moves sent_at forward past the re-alert window, under a row lock,
-- so retries, consecutive runs and several nodes seeing the same problem send once.
CREATE TABLE job_alerts (
    dedupe_key    text        NOT NULL,           -- job + ":" + hash of the problem's fingerprint
    channel       text        NOT NULL,           -- webhook, email
    job           text        NOT NULL,
    fingerprint   text        NOT NULL,           -- the normalized problem, for operators
    summary       text        NOT NULL DEFAULT '',-- the last error seen
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    sent_at       timestamptz,                    -- last delivery; NULL: never delivered
    suppressed    bigint      NOT NULL DEFAULT 0, -- occurrences not sent since sent_at
    last_run_id   bigint,
    PRIMARY KEY (dedupe_key, channel)
);
CREATE INDEX job_alerts_last_seen ON job_alerts (last_seen_at DESC);

-- +goose Down
DROP TABLE job_alerts;
