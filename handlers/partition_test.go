package handlers

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
)

func partitionRun(args PartitionArgs) handlertest.Job[PartitionArgs] {
	return handlertest.Job[PartitionArgs]{Args: args}
}

func partitionsOf(t *testing.T, s *testenv.Schema, parent string) []string {
	t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
		JOIN pg_namespace n ON n.oid = p.relnamespace
		WHERE p.relname = $1 AND n.nspname = $2 ORDER BY 1`, parent, s.Name)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		out = append(out, n)
	}
	return out
}

func TestPartitionCreatesAheadAndIsIdempotent(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	now := func() time.Time { return time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC) }
	p, err := NewPartition(s.Pool, PartitionConfig{Premake: 3}, now, testenv.Logger(t))
	require.NoError(t, err)
	ctx := context.Background()

	res, err := handlertest.Run(ctx, p, partitionRun(PartitionArgs{}))
	require.NoError(t, err)
	r := res.(PartitionResult)
	require.Len(t, r.Tables, 2)
	want := []string{"chat_messages_2026_11", "chat_messages_2026_12", "chat_messages_2027_01", "chat_messages_2027_02"}
	require.Equal(t, want, r.Tables[0].Created)
	require.Empty(t, r.Tables[0].Present)
	require.Equal(t, append(append([]string{}, want...), "chat_messages_default"), partitionsOf(t, s, "chat_messages"))

	// A row for December now lands in its own partition, not the default.
	_, err = s.Pool.Exec(ctx, `INSERT INTO chat_messages (id, channel_id, seq, sender_id, created_at)
		VALUES (1, 1, 1, 1, '2026-12-15T00:00:00Z')`)
	require.NoError(t, err)
	var where string
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM chat_messages WHERE id = 1`).Scan(&where))
	require.Equal(t, "chat_messages_2026_12", where)

	// Second run: nothing new, everything reported present.
	res, err = handlertest.Run(ctx, p, partitionRun(PartitionArgs{}))
	require.NoError(t, err)
	r = res.(PartitionResult)
	require.Empty(t, r.Tables[0].Created)
	require.Equal(t, want, r.Tables[0].Present)

	// A month later one more partition appears, the rest are present.
	later := func() time.Time { return time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC) }
	p2, err := NewPartition(s.Pool, PartitionConfig{Premake: 3}, later, testenv.Logger(t))
	require.NoError(t, err)
	res, err = handlertest.Run(ctx, p2, partitionRun(PartitionArgs{Tables: []string{"chat_messages"}}))
	require.NoError(t, err)
	require.Equal(t, []string{"chat_messages_2027_03"}, res.(PartitionResult).Tables[0].Created)
}

func TestPartitionReportsRowsStuckInDefault(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	ctx := context.Background()
	// Three January rows were written while no January partition existed.
	_, err := s.Pool.Exec(ctx, `INSERT INTO chat_messages (id, channel_id, seq, sender_id, created_at)
		SELECT g, 1, g, 1, '2027-01-10T00:00:00Z'::timestamptz FROM generate_series(1, 3) g`)
	require.NoError(t, err)
	now := func() time.Time { return time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC) }
	p, err := NewPartition(s.Pool, PartitionConfig{Premake: 3, Tables: []string{"chat_messages"}}, now, testenv.Logger(t))
	require.NoError(t, err)

	res, err := handlertest.Run(ctx, p, partitionRun(PartitionArgs{}))
	require.Error(t, err)
	require.True(t, job.IsDiscard(err), "stuck rows do not fix themselves; retrying is pointless: %v", err)
	require.Contains(t, err.Error(), "3 rows in chat_messages_default")
	tp := res.(PartitionResult).Tables[0]
	require.Equal(t, []StuckInDefault{{Partition: "chat_messages_2027_01", DefaultPartition: "chat_messages_default",
		From: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC), Rows: 3}},
		tp.StuckInDefault)
	// The other months were still created; the rows were not moved or lost.
	require.Equal(t, []string{"chat_messages_2026_11", "chat_messages_2026_12", "chat_messages_2027_02"}, tp.Created)
	var n int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM chat_messages_default`).Scan(&n))
	require.Equal(t, 3, n)
}

func TestPartitionMissingAndUnpartitionedTables(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	p, err := NewPartition(s.Pool, PartitionConfig{Tables: []string{"no_such_table", "users", "chat_messages"}},
		time.Now, testenv.Logger(t))
	require.NoError(t, err)
	res, err := handlertest.Run(context.Background(), p, partitionRun(PartitionArgs{Tables: []string{"no_such_table", "users"}}))
	require.Error(t, err)
	require.True(t, job.IsDiscard(err))
	r := res.(PartitionResult)
	require.Contains(t, r.Tables[0].Error, "does not exist")
	require.Contains(t, r.Tables[1].Error, "not a partitioned table")
}

func TestPartitionWaitsOutBusyParentWithLockTimeout(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	ctx := context.Background()
	// Another session holds a lock that conflicts with ATTACH for a moment, as a long
	// migration would.
	blocker, err := s.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = blocker.Exec(ctx, `LOCK TABLE chat_inbox IN ACCESS EXCLUSIVE MODE`)
	require.NoError(t, err)
	released := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond) // the lock holder's work; the handler must not fail meanwhile
		_ = blocker.Rollback(ctx)
		close(released)
	}()
	now := func() time.Time { return time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC) }
	p, err := NewPartition(s.Pool, PartitionConfig{Tables: []string{"chat_inbox"},
		LockTimeout: 50 * time.Millisecond, LockRetries: 8}, now, testenv.Logger(t))
	require.NoError(t, err)
	zero := 0
	res, err := handlertest.Run(ctx, p, partitionRun(PartitionArgs{Premake: &zero}))
	require.NoError(t, err)
	<-released
	require.Equal(t, []string{"chat_inbox_2026_11"}, res.(PartitionResult).Tables[0].Created)
}

// The tables param narrows the configured tables; a table outside them is refused before any
// DDL runs.
func TestPartitionTablesParamOnlyNarrows(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	p, err := NewPartition(s.Pool, PartitionConfig{Tables: []string{"chat_messages"}}, time.Now, testenv.Logger(t))
	require.NoError(t, err)
	ctx := context.Background()
	_, err = handlertest.Run(ctx, p, partitionRun(PartitionArgs{Tables: []string{"chat_messages", "audit_logs"}}))
	require.True(t, job.IsDiscard(err), "%v", err)
	require.ErrorContains(t, err, `"audit_logs" is not one of the configured tables`)
	var n int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit_logs'::regclass`).Scan(&n))
	require.Equal(t, 1, n, "only the DEFAULT partition: nothing was created")
	res, err := handlertest.Run(ctx, p, partitionRun(PartitionArgs{Tables: []string{"chat_messages"}}))
	require.NoError(t, err)
	require.Len(t, res.(PartitionResult).Tables, 1)
}
