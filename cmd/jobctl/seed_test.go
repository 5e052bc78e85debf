package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/demo"
	"github.com/chatplat/job-service/internal/testenv"
)

// TestSeedDemoTwiceLeavesTheSameCounts runs `jobctl seed-demo` twice on a fresh schema: the
// first applies the chat schema and fills it, the second replaces the rows one for one.
func TestSeedDemoTwiceLeavesTheSameCounts(t *testing.T) {
	s := testenv.NewSchema(t)
	cfgPath := filepath.Join(t.TempDir(), "jobctl.yaml")
	// With S3, so the file GC's demo files are seeded too: a second seed (a second `make run`)
	// must take them for the demo's own rows.
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf("postgres: {dsn: %q}\nredis: {addr: %q}\n"+
		"s3: {endpoint: %q, access_key: %q, secret_key: %q, path_style: true}\n",
		s.DSN, testenv.RedisAddr(), testenv.S3Endpoint(), testenv.S3AccessKey(), testenv.S3SecretKey())), 0o600))
	schema := filepath.Join(testenv.RepoRoot(t), "deploy", "local", "chat_schema.sql")

	var runs [2]seedSummary
	for i := range runs {
		out, err := jobctl(t, cfgPath, "--json", "seed-demo", "--schema", schema)
		require.NoError(t, err, out)
		require.NoError(t, json.Unmarshal([]byte(out), &runs[i]), out)
	}
	require.Equal(t, runs[0], runs[1])
	require.Equal(t, int64(demo.Users), runs[0].Rows["users"])
	require.Equal(t, int64(demo.Files+demo.GCFiles()), runs[0].Rows["file_metadata"])
	require.Greater(t, runs[0].Rows["chat_messages"], int64(0))

	out, err := jobctl(t, cfgPath, "seed-demo", "--schema", filepath.Join(t.TempDir(), "missing.sql"))
	require.Error(t, err, out)
	require.Contains(t, err.Error(), "--schema")
}

// TestSeedDemoRefusesForeignDatabases: seed-demo deletes and rewrites chat rows by id, so it
// refuses a database that is not the local stack's, or one holding rows it did not write,
// unless --allow-database names that database; refused, it changes nothing.
func TestSeedDemoRefusesForeignDatabases(t *testing.T) {
	ctx := context.Background()
	schema := filepath.Join(testenv.RepoRoot(t), "deploy", "local", "chat_schema.sql")
	writeCfg := func(dsn string) string {
		p := filepath.Join(t.TempDir(), "jobctl.yaml")
		require.NoError(t, os.WriteFile(p, []byte(fmt.Sprintf("postgres: {dsn: %q}\nredis: {addr: %q}\n", dsn, testenv.RedisAddr())), 0o600))
		return p
	}

	// The local stack's database, but a platform's rows: refused, untouched.
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	_, err := s.Pool.Exec(ctx, `INSERT INTO users (id, username) VALUES (1, 'alice'), (9001, 'bob')`)
	require.NoError(t, err)
	cfg := writeCfg(s.DSN)
	out, err := jobctl(t, cfg, "seed-demo", "--schema", schema)
	require.Error(t, err, out)
	require.ErrorContains(t, err, "refusing to seed")
	require.ErrorContains(t, err, "rows the demo did not write in users")
	var n int
	require.NoError(t, s.Pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n))
	require.Equal(t, 2, n)
	// Naming another database does not help; naming this one does.
	_, err = jobctl(t, cfg, "seed-demo", "--schema", schema, "--allow-database", "prod")
	require.ErrorContains(t, err, "does not name the target")
	out, err = jobctl(t, cfg, "seed-demo", "--schema", schema, "--allow-database", demo.LocalStackDatabase)
	require.NoError(t, err, out)

	// Another database on the same server is not the local stack's: refused even empty.
	name := "t_seed_" + testenv.Suffix()
	admin, err := pgx.Connect(ctx, testenv.PGDSN())
	require.NoError(t, err)
	defer admin.Close(ctx)
	_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	u, err := url.Parse(testenv.PGDSN())
	require.NoError(t, err)
	u.Path = "/" + name
	out, err = jobctl(t, writeCfg(u.String()), "seed-demo", "--schema", schema)
	require.Error(t, err, out)
	require.ErrorContains(t, err, "is not the local stack's")
	var tables int
	other, err := pgx.Connect(ctx, u.String())
	require.NoError(t, err)
	defer other.Close(ctx)
	require.NoError(t, other.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables))
	require.Zero(t, tables, "nothing applied")
}

func TestTargetIsLocalStack(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		t    demo.Target
		want bool
	}{
		{demo.Target{Database: "jobservice", Addr: "127.0.0.1", Port: 55432}, true},
		{demo.Target{Database: "jobservice", Addr: "::1", Port: 55432}, true},
		{demo.Target{Database: "jobservice", Port: 55432}, true}, // unix socket
		{demo.Target{Database: "jobservice", Addr: "10.0.3.7", Port: 55432}, false},
		{demo.Target{Database: "jobservice", Addr: "127.0.0.1", Port: 5432}, false},
		{demo.Target{Database: "chat", Addr: "127.0.0.1", Port: 55432}, false},
	} {
		require.Equal(t, c.want, c.t.IsLocalStack(), "%+v", c.t)
	}
}
