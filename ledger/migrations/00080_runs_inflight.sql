-- +goose Up
-- The runs not finished yet (scheduled, running, retrying, interrupted, abandoned), by id.
-- The repair pass, the stale reaper, the overdue, unpublished and broker-gone checks, the
-- backlog and the overlap check start here and reach job_runs by primary key, so job_runs needs
-- no index on status, heartbeat_at or updated_at: then a claim's take-over, a heartbeat and
-- an outcome change no indexed column and are heap-only (HOT) updates, which write no index
-- entry. job is copied (it never changes) so the overlap check reads one job's runs only.
CREATE TABLE job_runs_inflight (
    id  bigint PRIMARY KEY,
    job text   NOT NULL
);

-- Triggers keep the table, so it also sees the runs a node of an earlier release inserts,
-- claims and finishes with its own statements during a rolling upgrade. Statement-level with
-- transition tables: one set-based statement per batch, not one call per row. Measured with
-- pgbench (2 clients; a transaction claims 64 runs by insert, heartbeats and finishes them; 3
-- rounds of 12 s, load 2.5-3): no in-flight table 836-974 tps; these triggers 412-700; the
-- same upkeep in the statements' own CTEs 669-792, which would miss the earlier release's
-- writes; row triggers with WHEN clauses (none fires on a heartbeat) 550-661. Finished
-- statuses are named (the status check lists all), so a run of any other status counts as in
-- flight. Ids are matched through = ANY of an array so the plan, cached per session, is an
-- index probe of job_runs_inflight whatever the batch's size.
-- +goose StatementBegin
CREATE FUNCTION job_runs_inflight_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO job_runs_inflight (id, job)
    SELECT id, job FROM job_runs_new
    WHERE status NOT IN ('succeeded', 'failed', 'rejected', 'skipped', 'cancelled')
    ON CONFLICT (id) DO NOTHING;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION job_runs_inflight_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_runs_inflight WHERE id = ANY (ARRAY(
        SELECT id FROM job_runs_new WHERE status IN ('succeeded', 'failed', 'rejected', 'skipped', 'cancelled')));
    -- A finished run made live again (no statement of ours does; an operator's might).
    INSERT INTO job_runs_inflight (id, job)
    SELECT id, job FROM job_runs_new
    WHERE status NOT IN ('succeeded', 'failed', 'rejected', 'skipped', 'cancelled')
      AND id = ANY (ARRAY(
        SELECT id FROM job_runs_old WHERE status IN ('succeeded', 'failed', 'rejected', 'skipped', 'cancelled')))
    ON CONFLICT (id) DO NOTHING;
    RETURN NULL;
END
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE FUNCTION job_runs_inflight_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_runs_inflight WHERE id = ANY (ARRAY(
        SELECT id FROM job_runs_old WHERE status NOT IN ('succeeded', 'failed', 'rejected', 'skipped', 'cancelled')));
    RETURN NULL;
END
$$;
-- +goose StatementEnd
-- CREATE TRIGGER locks job_runs against writes until this migration commits: no run is
-- written between the triggers' start and the fill below, which therefore sees every run.
CREATE TRIGGER job_runs_inflight_inserted AFTER INSERT ON job_runs
    REFERENCING NEW TABLE AS job_runs_new FOR EACH STATEMENT EXECUTE FUNCTION job_runs_inflight_inserted();
CREATE TRIGGER job_runs_inflight_updated AFTER UPDATE ON job_runs
    REFERENCING OLD TABLE AS job_runs_old NEW TABLE AS job_runs_new
    FOR EACH STATEMENT EXECUTE FUNCTION job_runs_inflight_updated();
CREATE TRIGGER job_runs_inflight_deleted AFTER DELETE ON job_runs
    REFERENCING OLD TABLE AS job_runs_old FOR EACH STATEMENT EXECUTE FUNCTION job_runs_inflight_deleted();
-- The runs in flight now, read through the two partial indexes that still cover them
-- (job_runs_live, job_runs_stuck), so the lock above is short on a large table.
INSERT INTO job_runs_inflight (id, job)
SELECT id, job FROM job_runs WHERE status IN ('scheduled', 'running', 'retrying')
UNION
SELECT id, job FROM job_runs WHERE status IN ('interrupted', 'retrying', 'abandoned')
ON CONFLICT (id) DO NOTHING;

-- Room on each page for a new version of every row on it: a batch's outcome (or claim, or
-- heartbeat) updates all the runs one claim inserted side by side, and within one statement
-- none of the old versions can be pruned yet, so a HOT update of each needs as much free space
-- as the rows take, and more at the outcome, which makes a row wider (finished_at, result,
-- error). At 50 the outcomes of TestRunUpdatesAreHOT (a small result or error each) already
-- overflowed their pages (97.5% HOT); at 45 they fit; 40 leaves room for versions half as wide
-- again as the rows. Versions dead since an earlier statement are pruned when a page is next
-- read. It applies to pages written from now on; the cost is a table about 2.5 times as large.
ALTER TABLE job_runs SET (fillfactor = 40);

-- +goose Down
ALTER TABLE job_runs RESET (fillfactor);
DROP TRIGGER job_runs_inflight_deleted ON job_runs;
DROP TRIGGER job_runs_inflight_updated ON job_runs;
DROP TRIGGER job_runs_inflight_inserted ON job_runs;
DROP FUNCTION job_runs_inflight_deleted();
DROP FUNCTION job_runs_inflight_updated();
DROP FUNCTION job_runs_inflight_inserted();
DROP TABLE job_runs_inflight;
