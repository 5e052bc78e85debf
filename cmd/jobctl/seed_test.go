package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/demo"
	"github.com/chatplat/job-service/internal/testenv"
)

// TestSeedDemoTwiceLeavesTheSameCounts runs `jobctl seed-demo` twice on a fresh schema: the
// first applies the chat schema and fills it, the second replaces the rows one for one.
func TestSeedDemoTwiceLeavesTheSameCounts(t *testing.T) {
	s := testenv.NewSchema(t)
	cfgPath := filepath.Join(t.TempDir(), "jobctl.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf("postgres: {dsn: %q}\nredis: {addr: %q}\n", s.DSN, testenv.RedisAddr())), 0o600))
	schema := filepath.Join(testenv.RepoRoot(t), "deploy", "local", "chat_schema.sql")

	var runs [2]seedSummary
	for i := range runs {
		out, err := jobctl(t, cfgPath, "--json", "seed-demo", "--schema", schema)
		require.NoError(t, err, out)
		require.NoError(t, json.Unmarshal([]byte(out), &runs[i]), out)
	}
	require.Equal(t, runs[0], runs[1])
	require.Equal(t, int64(demo.Users), runs[0].Rows["users"])
	require.Equal(t, int64(demo.Files), runs[0].Rows["file_metadata"])
	require.Greater(t, runs[0].Rows["chat_messages"], int64(0))

	out, err := jobctl(t, cfgPath, "seed-demo", "--schema", filepath.Join(t.TempDir(), "missing.sql"))
	require.Error(t, err, out)
	require.Contains(t, err.Error(), "--schema")
}
