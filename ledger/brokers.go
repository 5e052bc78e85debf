package ledger

import (
	"context"
	"fmt"
)

// WaitingBrokers returns the brokers holding the messages of scheduled runs no node has
// claimed yet, as their send results named them (runs published before migration 00055, or
// by a publisher that does not say, name none and are left to the overdue check).
func (l *Ledger) WaitingBrokers(ctx context.Context) ([]string, error) {
	rows, err := l.db.Query(ctx, `SELECT DISTINCT j.msg_broker FROM job_runs j
		WHERE j.id = ANY (ARRAY(SELECT id FROM job_runs_inflight))
		  AND j.status = 'scheduled' AND j.msg_broker <> '' ORDER BY j.msg_broker`)
	if err != nil {
		return nil, fmt.Errorf("list brokers holding scheduled runs: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("list brokers holding scheduled runs: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list brokers holding scheduled runs: %w", err)
	}
	return out, nil
}

// ForgetBroker marks the scheduled runs whose message is on broker as unpublished, because
// that broker left the cluster and its copy will not be delivered (or only when it comes
// back, and then the claim dedups it). The repair pass's unpublished step publishes them again
// and records where the new message went. It returns how many runs it moved.
func (l *Ledger) ForgetBroker(ctx context.Context, broker string) (int64, error) {
	tag, err := l.db.Exec(ctx, `UPDATE job_runs j SET msg_id = '', msg_broker = '', msg_queue = -1, updated_at = now()
		WHERE j.id = ANY (ARRAY(SELECT id FROM job_runs_inflight))
		  AND j.status = 'scheduled' AND j.msg_broker = $1`, broker)
	if err != nil {
		return 0, fmt.Errorf("forget the messages on broker %s: %w", broker, err)
	}
	return tag.RowsAffected(), nil
}
