package handlers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
)

type partitionBounds struct {
	Name     string
	From, To time.Time
}

// boundsOf reads the range bounds of parent's partitions (the default one left out), in order.
func boundsOf(t *testing.T, s *testenv.Schema, parent string) []partitionBounds {
	t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT c.relname, b[1]::timestamptz, b[2]::timestamptz
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,
			regexp_match(pg_get_expr(c.relpartbound, c.oid), '^FOR VALUES FROM \(''([^'']*)''\) TO \(''([^'']*)''\)$') b
		WHERE i.inhparent = $1::regclass AND b IS NOT NULL ORDER BY 2`, pgx.Identifier{s.Name, parent}.Sanitize())
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[partitionBounds])
	require.NoError(t, err)
	return out
}

// attachMonths creates parent's partitions for the months [first, first+n) drawn in loc, as a
// platform's own tooling would have made them before the job ran.
func attachMonths(t *testing.T, s *testenv.Schema, parent string, loc *time.Location, first time.Time, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		from := time.Date(first.Year(), first.Month()+time.Month(i), 1, 0, 0, 0, 0, loc)
		to := from.AddDate(0, 1, 0)
		_, err := s.Pool.Exec(context.Background(), fmt.Sprintf(
			`CREATE TABLE %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`,
			pgx.Identifier{s.Name, fmt.Sprintf("%s_%04d_%02d", parent, from.Year(), from.Month())}.Sanitize(),
			pgx.Identifier{s.Name, parent}.Sanitize(), from.Format(time.RFC3339), to.Format(time.RFC3339)))
		require.NoError(t, err)
	}
}

// The platform's partitions may be drawn in UTC or in its own zone (+08): the months the job
// adds continue them without a gap, whichever it was, when no zone is configured.
func TestPartitionFollowsExistingBoundsInBothZones(t *testing.T) {
	for _, zone := range []string{"UTC", "Asia/Shanghai"} {
		t.Run(zone, func(t *testing.T) {
			loc, err := time.LoadLocation(zone)
			require.NoError(t, err)
			s := testenv.NewSchema(t)
			s.ApplyChatSchema(t)
			ctx := context.Background()
			attachMonths(t, s, "chat_messages", loc, time.Date(2026, 10, 1, 0, 0, 0, 0, loc), 2)

			// 20:00 UTC on 30 November is already December in Shanghai.
			now := func() time.Time { return time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC) }
			p, err := NewPartition(s.Pool, PartitionConfig{Tables: []string{"chat_messages"}, Premake: 2}, now, testenv.Logger(t))
			require.NoError(t, err)
			res, err := handlertest.Run(ctx, p, partitionRun(PartitionArgs{}))
			require.NoError(t, err)
			r := res.(PartitionResult)
			if zone == "UTC" {
				require.Equal(t, []string{"chat_messages_2026_11"}, r.Tables[0].Present)
				require.Equal(t, []string{"chat_messages_2026_12", "chat_messages_2027_01"}, r.Tables[0].Created)
			} else {
				require.Equal(t, []string{"chat_messages_2026_12", "chat_messages_2027_01", "chat_messages_2027_02"}, r.Tables[0].Created)
			}

			bounds := boundsOf(t, s, "chat_messages")
			for i, b := range bounds {
				local := b.From.In(loc)
				require.Equal(t, time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, loc), local, "%s starts a month in %s", b.Name, zone)
				require.Equal(t, fmt.Sprintf("chat_messages_%04d_%02d", local.Year(), local.Month()), b.Name)
				if i > 0 {
					require.True(t, bounds[i-1].To.Equal(b.From), "%s continues %s without a gap or overlap", b.Name, bounds[i-1].Name)
				}
			}

			// The first minutes of December in the platform's zone land in December's partition.
			_, err = s.Pool.Exec(ctx, `INSERT INTO chat_messages (id, channel_id, seq, sender_id, created_at) VALUES (1, 1, 1, 1, $1)`,
				time.Date(2026, 12, 1, 0, 5, 0, 0, loc))
			require.NoError(t, err)
			var where string
			require.NoError(t, s.Pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM chat_messages WHERE id = 1`).Scan(&where))
			require.Equal(t, "chat_messages_2026_12", where)
		})
	}
}

// A configured zone that disagrees with the existing bounds is refused before anything is
// created: a month drawn in the wrong zone would leave a hole of hours between partitions.
func TestPartitionRefusesZoneThatDisagreesWithExistingBounds(t *testing.T) {
	for _, c := range []struct{ drawn, configured string }{{"Asia/Shanghai", "UTC"}, {"UTC", "Asia/Shanghai"}} {
		t.Run(c.drawn+" configured "+c.configured, func(t *testing.T) {
			loc, err := time.LoadLocation(c.drawn)
			require.NoError(t, err)
			s := testenv.NewSchema(t)
			s.ApplyChatSchema(t)
			attachMonths(t, s, "chat_messages", loc, time.Date(2026, 10, 1, 0, 0, 0, 0, loc), 2)
			before := boundsOf(t, s, "chat_messages")

			now := func() time.Time { return time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC) }
			p, err := NewPartition(s.Pool, PartitionConfig{Tables: []string{"chat_messages"}, Premake: 3, TimeZone: c.configured},
				now, testenv.Logger(t))
			require.NoError(t, err)
			res, err := handlertest.Run(context.Background(), p, partitionRun(PartitionArgs{}))
			require.Error(t, err)
			require.True(t, job.IsDiscard(err), "a zone mismatch does not fix itself on retry: %v", err)
			require.Contains(t, err.Error(), "time_zone "+c.configured)
			require.Empty(t, res.(PartitionResult).Tables[0].Created)
			require.Equal(t, before, boundsOf(t, s, "chat_messages"), "nothing created")
		})
	}
}
