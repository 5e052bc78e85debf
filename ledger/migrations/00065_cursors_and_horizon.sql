-- +goose Up
-- The ticker's cursor outside the rows retention prunes: the newest occurrence of each job it
-- handled (published, skipped while paused, or missed), kept when retention deletes the run
-- rows that said so. Without it a new leader would start a job whose last row was pruned from
-- now, and the occurrences missed meanwhile would pass unrecorded.
CREATE TABLE job_cursors (
    job        text PRIMARY KEY,
    occurrence timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The dedup horizon: the newest cutoff retention pruned runs with. Every pruned run was
-- scheduled before it, so a message without a run row scheduled before it may be the late
-- copy of a pruned run: the claim refuses it as too old instead of running it again.
CREATE TABLE job_prune_horizon (
    target     text PRIMARY KEY,
    cutoff     timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE job_prune_horizon;
DROP TABLE job_cursors;
