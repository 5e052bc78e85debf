package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// GCEntry is one row of gc_log: a file the GC removed.
type GCEntry struct {
	ID            int64     `json:"id"`
	FileID        int64     `json:"file_id"`
	FileHash      string    `json:"file_hash"`
	Bucket        string    `json:"bucket"`
	ObjectPath    string    `json:"object_path"`
	Bytes         int64     `json:"bytes"`
	ObjectMissing bool      `json:"object_missing"`
	DeletedAt     time.Time `json:"deleted_at"`
	RunID         *int64    `json:"run_id,omitempty"`
	Job           string    `json:"job,omitempty"`     // of the run, for jobctl
	RunKey        string    `json:"run_key,omitempty"` // of the run, for jobctl
}

// InsertGCLog writes one gc_log row per entry for runID (0: none), in tx.
func InsertGCLog(ctx context.Context, tx pgx.Tx, runID int64, entries []GCEntry) error {
	if len(entries) == 0 {
		return nil
	}
	ids := make([]int64, len(entries))
	hashes := make([]string, len(entries))
	buckets := make([]string, len(entries))
	paths := make([]string, len(entries))
	bytes := make([]int64, len(entries))
	missing := make([]bool, len(entries))
	for i, e := range entries {
		ids[i], hashes[i], buckets[i], paths[i], bytes[i], missing[i] = e.FileID, e.FileHash, e.Bucket, e.ObjectPath, e.Bytes, e.ObjectMissing
	}
	var run *int64
	if runID != 0 {
		run = &runID
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO gc_log (file_id, file_hash, bucket, object_path, bytes, object_missing, run_id)
		SELECT f.*, $7 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bool[]) AS f`,
		ids, hashes, buckets, paths, bytes, missing, run)
	if err != nil {
		return fmt.Errorf("write gc_log for run %d: %w", runID, err)
	}
	return nil
}

// RecordBatchRun inserts a finished job_runs row for work that did not come through the job
// topic (a batch of file events), in tx, and returns its id. status is succeeded or failed.
// A row that is terminal from the start never looks abandoned to the ticker's reaper, so it
// is never republished as a job message. The row is also its one attempt (see job_attempts).
func RecordBatchRun(ctx context.Context, tx pgx.Tx, jobName, runKey, node, msgID string, startedAt time.Time,
	status Status, result any, errText string) (int64, error) {
	var res []byte
	if result != nil {
		var err error
		if res, err = json.Marshal(result); err != nil {
			return 0, fmt.Errorf("record %s run %s: encode result: %w", jobName, runKey, err)
		}
	}
	var id int64
	err := tx.QueryRow(ctx, `
		INSERT INTO job_runs (job, run_key, trigger, scheduled_at, status, attempt, node, msg_id,
			started_at, finished_at, result, error)
		VALUES ($1, $2, 'event', $3, $4, 1, $5, $6, $3, clock_timestamp(), $7, $8)
		RETURNING id`, jobName, runKey, startedAt, string(status), node, msgID, res, errText).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("record %s run %s: %w", jobName, runKey, err)
	}
	return id, nil
}

// GCLogFilter selects gc_log rows; zero fields match all.
type GCLogFilter struct {
	FileID   int64
	FileHash string
	RunID    int64
	Limit    int
}

// GCLog answers "what happened to this file?": the gc_log rows that match f, newest first,
// with the job and run key of the run that removed each.
func (l *Ledger) GCLog(ctx context.Context, f GCLogFilter) ([]GCEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	rows, err := l.db.Query(ctx, `
		SELECT g.id, g.file_id, g.file_hash, g.bucket, g.object_path, g.bytes, g.object_missing, g.deleted_at,
			g.run_id, COALESCE(r.job, ''), COALESCE(r.run_key, '')
		FROM gc_log g LEFT JOIN job_runs r ON r.id = g.run_id
		WHERE ($1 = 0 OR g.file_id = $1) AND ($2 = '' OR g.file_hash = $2) AND ($3 = 0 OR g.run_id = $3)
		ORDER BY g.deleted_at DESC, g.id DESC LIMIT $4`, f.FileID, f.FileHash, f.RunID, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("read gc_log: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (GCEntry, error) {
		var e GCEntry
		err := row.Scan(&e.ID, &e.FileID, &e.FileHash, &e.Bucket, &e.ObjectPath, &e.Bytes, &e.ObjectMissing,
			&e.DeletedAt, &e.RunID, &e.Job, &e.RunKey)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read gc_log: %w", err)
	}
	return out, nil
}

// RecordBatchFailure records a batch of work that failed before anything was committed (the
// database or S3 was down); the batch is redelivered and gets a record of its own then.
func (l *Ledger) RecordBatchFailure(ctx context.Context, jobName, runKey, node, msgID string, startedAt time.Time,
	result any, errText string) error {
	tx, err := l.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("record failed %s batch: %w", jobName, err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := RecordBatchRun(ctx, tx, jobName, runKey, node, msgID, startedAt, StatusFailed, result, errText); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
