package ledger

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// NodeBeat is what a node says about itself on each heartbeat.
type NodeBeat struct {
	Node      string
	Version   string
	StartedAt time.Time
	InFlight  int
	Leader    bool
	Queues    []string
}

// BeatNode records that a node is alive (and what it is doing) at now.
func (l *Ledger) BeatNode(ctx context.Context, b NodeBeat, now time.Time) error {
	if b.Queues == nil {
		b.Queues = []string{}
	}
	_, err := l.db.Exec(ctx, `INSERT INTO job_nodes (node, version, started_at, heartbeat_at, in_flight, leader, queues)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (node) DO UPDATE SET version = EXCLUDED.version, started_at = EXCLUDED.started_at,
			heartbeat_at = EXCLUDED.heartbeat_at, in_flight = EXCLUDED.in_flight, leader = EXCLUDED.leader,
			queues = EXCLUDED.queues, stopped_at = NULL`,
		b.Node, b.Version, b.StartedAt, now, b.InFlight, b.Leader, b.Queues)
	if err != nil {
		return fmt.Errorf("record heartbeat of node %s: %w", b.Node, err)
	}
	return nil
}

// StopNode marks a node as cleanly stopped.
func (l *Ledger) StopNode(ctx context.Context, node string, now time.Time) error {
	_, err := l.db.Exec(ctx, `UPDATE job_nodes SET stopped_at = $2, in_flight = 0, leader = false, queues = '{}'
		WHERE node = $1`, node, now)
	if err != nil {
		return fmt.Errorf("record stop of node %s: %w", node, err)
	}
	return nil
}

// Node states as NodeInfo.State reports them.
const (
	NodeLive    = "live"
	NodeGone    = "gone"    // no heartbeat for longer than stale_after: killed, partitioned, hung
	NodeStopped = "stopped" // shut down cleanly
)

// NodeInfo is one row of job_nodes with its state at the time of the query.
type NodeInfo struct {
	Node        string     `json:"node"`
	State       string     `json:"state"`
	Version     string     `json:"version"`
	StartedAt   time.Time  `json:"started_at"`
	HeartbeatAt time.Time  `json:"heartbeat_at"`
	InFlight    int        `json:"in_flight"`
	Leader      bool       `json:"leader"`
	Queues      []string   `json:"queues"`
	StoppedAt   *time.Time `json:"stopped_at,omitempty"`
}

// Nodes lists the nodes seen within the last keep, live ones first. A node whose heartbeat is
// older than staleAfter is gone, and neither its in-flight count nor its leadership is believed.
func (l *Ledger) Nodes(ctx context.Context, now time.Time, staleAfter, keep time.Duration) ([]NodeInfo, error) {
	rows, err := l.db.Query(ctx, `SELECT node, version, started_at, heartbeat_at, in_flight, leader, queues, stopped_at
		FROM job_nodes WHERE heartbeat_at > $1 ORDER BY node`, now.Add(-keep))
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (NodeInfo, error) {
		var n NodeInfo
		err := r.Scan(&n.Node, &n.Version, &n.StartedAt, &n.HeartbeatAt, &n.InFlight, &n.Leader, &n.Queues, &n.StoppedAt)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	for i := range out {
		n := &out[i]
		switch {
		case n.StoppedAt != nil:
			n.State = NodeStopped
		case now.Sub(n.HeartbeatAt) > staleAfter:
			n.State = NodeGone
		default:
			n.State = NodeLive
		}
		if n.State != NodeLive {
			n.InFlight, n.Leader = 0, false
		}
	}
	// Live first, then gone, then stopped; by name within each.
	rank := map[string]int{NodeLive: 0, NodeGone: 1, NodeStopped: 2}
	sortStable(out, func(a, b NodeInfo) bool { return rank[a.State] < rank[b.State] })
	return out, nil
}

// LastSuccess returns when each job's last successful run finished; jobs that never succeeded
// are absent. One indexed lookup per job (job_runs_job_created), however long the ledger.
func (l *Ledger) LastSuccess(ctx context.Context, jobs []string) (map[string]time.Time, error) {
	rows, err := l.db.Query(ctx, `SELECT j, r.finished_at FROM unnest($1::text[]) AS j,
		LATERAL (SELECT finished_at FROM job_runs WHERE job = j AND status = 'succeeded' AND finished_at IS NOT NULL
			ORDER BY created_at DESC LIMIT 1) r`, jobs)
	if err != nil {
		return nil, fmt.Errorf("last success of %d jobs: %w", len(jobs), err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var j string
		var at time.Time
		if err := rows.Scan(&j, &at); err != nil {
			return nil, fmt.Errorf("last success: %w", err)
		}
		out[j] = at
	}
	return out, rows.Err()
}
