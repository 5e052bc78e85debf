package ledger_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
)

// The design's DDL for the report tables (original-design §5), verbatim, as the platform's
// admin-service creates them.
const designReportDDL = `
CREATE TABLE daily_stats (
    id BIGSERIAL PRIMARY KEY,
    stat_date DATE NOT NULL,          -- 统计日期 (2025-11-24)
    
    total_users BIGINT DEFAULT 0,     -- 总用户数
    active_users BIGINT DEFAULT 0,    -- DAU
    
    total_msgs BIGINT DEFAULT 0,      -- 当日消息总数
    storage_usage BIGINT DEFAULT 0,   -- MinIO 存储增量 (Bytes)
    
    api_qps_peak INT DEFAULT 0,       -- API QPS 峰值
    
    created_at TIMESTAMPTZ DEFAULT NOW(),
    UNIQUE(stat_date)
);

-- 群组活跃度排行 (Top 100)
CREATE TABLE group_activity_rank (
    id BIGSERIAL PRIMARY KEY,
    stat_week VARCHAR(10),            -- "2025-48" (第48周)
    channel_id BIGINT NOT NULL,
    msg_count BIGINT,                 -- 发言数
    active_members INT,               -- 发言人数
    score DECIMAL(10, 2),             -- 综合热度分
    rank INT,                         -- 排名
    created_at TIMESTAMPTZ DEFAULT NOW()
);`

// designColumns are the design's columns with their types, in its order.
var (
	designDaily = []string{"id bigint", "stat_date date", "total_users bigint", "active_users bigint",
		"total_msgs bigint", "storage_usage bigint", "api_qps_peak integer", "created_at timestamp with time zone"}
	designRank = []string{"id bigint", "stat_week character varying(10)", "channel_id bigint", "msg_count bigint",
		"active_members integer", "score numeric(10,2)", "rank integer", "created_at timestamp with time zone"}
	ourDaily = []string{"time_zone text", "new_users bigint", "storage_added_bytes bigint",
		"storage_freed_bytes bigint", "api_qps_peak_at timestamp with time zone", "updated_at timestamp with time zone"}
	ourRank = []string{"replies bigint", "week_start timestamp with time zone", "updated_at timestamp with time zone"}
)

func columns(t *testing.T, s *testenv.Schema, table string) []string {
	t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT attname || ' ' || format_type(atttypid, atttypmod)
		FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, table)
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		var c string
		require.NoError(t, rows.Scan(&c))
		out = append(out, c)
	}
	require.NoError(t, rows.Err())
	return out
}

// requireDesignShape checks the design's columns come first, exactly, and ours follow; that
// stat_date is unique (the daily upsert's conflict target) and id the primary key.
func requireDesignShape(t *testing.T, s *testenv.Schema) {
	t.Helper()
	require.Equal(t, append(append([]string{}, designDaily...), ourDaily...), columns(t, s, "daily_stats"))
	require.Equal(t, append(append([]string{}, designRank...), ourRank...), columns(t, s, "group_activity_rank"))
	var pk, uniq string
	require.NoError(t, s.Pool.QueryRow(context.Background(), `
		SELECT (SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'daily_stats'::regclass AND contype = 'p'),
		       (SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'daily_stats'::regclass AND contype = 'u')`).Scan(&pk, &uniq))
	require.Equal(t, "PRIMARY KEY (id)", pk)
	require.Equal(t, "UNIQUE (stat_date)", uniq)
}

func TestReportTablesFromEmptyDatabase(t *testing.T) {
	s := testenv.NewSchema(t)
	require.NoError(t, ledger.Migrate(context.Background(), s.Pool))
	requireDesignShape(t, s)
}

func TestReportTablesAdoptAdminServiceTables(t *testing.T) {
	s := testenv.NewSchema(t)
	ctx := context.Background()
	_, err := s.Pool.Exec(ctx, designReportDDL)
	require.NoError(t, err)
	_, err = s.Pool.Exec(ctx, `
		INSERT INTO daily_stats (stat_date, total_users, active_users) VALUES ('2026-11-01', 10, 3);
		INSERT INTO group_activity_rank (stat_week, channel_id, msg_count, active_members, score, rank)
		VALUES ('2026-44', 7, 100, 5, 12.5, 1)`)
	require.NoError(t, err)

	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	requireDesignShape(t, s)
	var users, active int64
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT total_users, active_users FROM daily_stats WHERE stat_date = '2026-11-01'`).Scan(&users, &active))
	require.Equal(t, []int64{10, 3}, []int64{users, active})
	var score float64
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT score FROM group_activity_rank WHERE stat_week = '2026-44'`).Scan(&score))
	require.Equal(t, 12.5, score)
	// Running again (another node starting) changes nothing.
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	requireDesignShape(t, s)
}

func TestReportTablesMigrateFirstShapeKeepingRows(t *testing.T) {
	s := testenv.NewSchema(t)
	ctx := context.Background()
	// The release before: migrations 1..4, report tables with our first column names.
	require.NoError(t, ledger.MigrateTo(ctx, s.Pool, 4))
	require.Contains(t, columns(t, s, "daily_stats"), "dau bigint")
	_, err := s.Pool.Exec(ctx, `
		INSERT INTO daily_stats (stat_date, time_zone, total_users, dau, messages, new_users, storage_added_bytes,
			api_qps_peak, api_qps_peak_at)
		VALUES ('2026-11-15', 'Asia/Shanghai', 50, 20, 900, 4, 10000, 12, '2026-11-15T02:00:00Z'),
		       ('2026-11-16', 'Asia/Shanghai', 51, 21, 901, 1, 0, 0, NULL);
		INSERT INTO group_activity_rank (stat_week, rank, channel_id, messages, active_members, score, week_start)
		VALUES ('2026-46', 1, 3, 40, 4, 60, '2026-11-08T16:00:00Z'), ('2026-46', 2, 9, 10, 2, 20, '2026-11-08T16:00:00Z');
		-- Freed on the 15th in Shanghai (16:00 UTC on the 14th .. 16:00 UTC on the 15th): 3000.
		INSERT INTO gc_log (file_id, file_hash, bucket, object_path, bytes, object_missing, deleted_at) VALUES
		  (1, 'h', 'b', 'p', 2000, false, '2026-11-14T16:00:00Z'),
		  (2, 'h', 'b', 'p', 1000, false, '2026-11-15T15:59:59Z'),
		  (3, 'h', 'b', 'p', 5000, true,  '2026-11-15T10:00:00Z'),
		  (4, 'h', 'b', 'p', 700,  false, '2026-11-15T16:00:00Z')`)
	require.NoError(t, err)

	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	requireDesignShape(t, s)
	rows, err := s.Pool.Query(ctx, `SELECT stat_date::text, total_users, active_users, total_msgs, storage_usage,
		api_qps_peak, time_zone, new_users, storage_added_bytes, storage_freed_bytes FROM daily_stats ORDER BY stat_date`)
	require.NoError(t, err)
	type day struct {
		Date                       string
		Total, Active, Msgs, Usage int64
		Peak                       int32
		TZ                         string
		New, Added, Freed          int64
	}
	var got []day
	for rows.Next() {
		var d day
		require.NoError(t, rows.Scan(&d.Date, &d.Total, &d.Active, &d.Msgs, &d.Usage, &d.Peak, &d.TZ, &d.New, &d.Added, &d.Freed))
		got = append(got, d)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []day{
		{"2026-11-15", 50, 20, 900, 7000, 12, "Asia/Shanghai", 4, 10000, 3000},
		{"2026-11-16", 51, 21, 901, -700, 0, "Asia/Shanghai", 1, 0, 700},
	}, got)

	var ranks []string
	rows, err = s.Pool.Query(ctx, `SELECT format('%s #%s ch%s %s/%s %s', stat_week, rank, channel_id, msg_count, active_members, score)
		FROM group_activity_rank ORDER BY rank`)
	require.NoError(t, err)
	for rows.Next() {
		var r string
		require.NoError(t, rows.Scan(&r))
		ranks = append(ranks, r)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, []string{"2026-46 #1 ch3 40/4 60.00", "2026-46 #2 ch9 10/2 20.00"}, ranks)
	// Old tables are gone; the new ids continue from the copied rows.
	var leftovers int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relnamespace = current_schema()::regnamespace
		AND relname LIKE '%\_v1%'`).Scan(&leftovers))
	require.Zero(t, leftovers)
	_, err = s.Pool.Exec(ctx, `INSERT INTO daily_stats (stat_date) VALUES ('2026-11-17')`)
	require.NoError(t, err)
}
