-- +goose Up
-- One row per job-service node, upserted on every consumer heartbeat, so the console, jobctl
-- nodes and the API list the cluster from the ledger alone (no node has to be reachable).
-- A row whose heartbeat_at is older than consumer.stale_after is a node that is gone.
CREATE TABLE job_nodes (
    node         text        PRIMARY KEY,
    version      text        NOT NULL DEFAULT '',
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL,
    in_flight    int         NOT NULL DEFAULT 0,
    leader       boolean     NOT NULL DEFAULT false,
    -- RocketMQ queues the node's consumer holds, as the client reports them ("broker/topic/id").
    queues       text[]      NOT NULL DEFAULT '{}',
    -- Set by a clean shutdown, so a node that stopped is told from one that vanished.
    stopped_at   timestamptz
);

-- +goose Down
DROP TABLE job_nodes;
