package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/testenv"
)

// TestFileEventAndGCLogEndToEnd: jobctl file-event publishes an event for a file it looks up
// in the table, the node removes the file after the grace period, and jobctl gc-log answers.
func TestFileEventAndGCLogEndToEnd(t *testing.T) {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	m := testenv.NewMQ(t, 2)
	b := testenv.NewBucket(t)
	topic := testenv.NewTopic(t, m.Config, "F_")
	raw := fmt.Sprintf(`
postgres: {dsn: %q}
rocketmq: {name_servers: [%q], topic: %s, consumer_group: %s, producer_group: %s}
ticker: {enabled: false}
s3: {endpoint: %q, access_key: %q, secret_key: %q}
filegc: {enabled: true, topic: %s, group: g%s, grace: 1s}
`, s.DSN, m.Config.NameServers[0], m.Config.Topic, m.Config.ConsumerGroup, m.Config.ProducerGroup,
		b.Endpoint, testenv.S3AccessKey(), testenv.S3SecretKey(), topic, topic)
	cfgPath := filepath.Join(t.TempDir(), "jobctl.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(raw), 0o600))
	cfg, err := app.LoadConfig(cfgPath, nil)
	require.NoError(t, err)
	node := &app.Node{Cfg: cfg, Log: testenv.Logger(t), Instance: "n-" + testenv.Suffix()}
	require.NoError(t, node.Start(context.Background()))
	t.Cleanup(func() { _ = node.Stop(context.Background()) })

	b.Put(t, "x/42", 42)
	_, err = s.Pool.Exec(context.Background(), `INSERT INTO file_metadata (id, file_hash, bucket, object_path, size_bytes,
		ref_count, status, updated_at) VALUES (42, 'abc', $1, 'x/42', 42, 0, 2, now() - interval '1 second')`, b.Name)
	require.NoError(t, err)
	out, err := jobctl(t, cfgPath, "gc-log", "--file", "42")
	require.NoError(t, err)
	require.Contains(t, out, "no gc_log entry")

	out, err = jobctl(t, cfgPath, "file-event", "--file", "42")
	require.NoError(t, err, out)
	require.Contains(t, out, "published REF_ZERO event for file 42 ("+b.Name+"/x/42)")
	testenv.Eventually(t, 30*time.Second, func() bool { return !b.Exists(t, "x/42") }, "object removed")
	testenv.Eventually(t, 10*time.Second, func() bool {
		out, err = jobctl(t, cfgPath, "gc-log", "--file", "42")
		require.NoError(t, err)
		return !strings.Contains(out, "no gc_log entry")
	}, "gc_log entry")
	require.Contains(t, out, b.Name+"/x/42")
	require.Contains(t, out, "file_gc_event")

	_, err = jobctl(t, cfgPath, "file-event", "--file", "43")
	require.ErrorContains(t, err, "file 43: no row")
}
