// Package testenv gives integration tests the real servers of deploy/local: a fresh Postgres
// schema, a unique RocketMQ topic and group, cleaned up with t.Cleanup. Under `go test -short`
// integration tests skip; otherwise a server that is down is a failure, never a skip.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatplat/job-service/mq"
)

// Integration skips the test under -short and otherwise returns.
func Integration(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the local stack (make stack-up); skipped under -short")
	}
}

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Addresses of the local stack, from the environment deploy/local/env.sh exports.
var (
	pgDSNDefault = "postgres://jobsvc:jobsvc@127.0.0.1:55432/jobservice?sslmode=disable"
)

// PGDSN is the stack's DSN.
func PGDSN() string { return getenv("JOBSVC_PG_DSN", pgDSNDefault) }

// NameServer is the RocketMQ namesrv address.
func NameServer() string { return getenv("JOBSVC_RMQ_NAMESRV", "127.0.0.1:9876") }

// Broker is the RocketMQ broker address.
func Broker() string { return getenv("JOBSVC_RMQ_BROKER", "127.0.0.1:10911") }

// Suffix returns a short random name part.
func Suffix() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RepoRoot finds the repository root (where go.mod is).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Logger writes through t.Log, so output shows up only for failing tests.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Schema is a fresh Postgres schema for one test.
type Schema struct {
	Name string
	DSN  string // the stack's DSN with search_path set to the schema
	Pool *pgxpool.Pool
}

// NewSchema creates a schema, returns a pool whose connections use it, and drops it at cleanup.
func NewSchema(t testing.TB) *Schema {
	t.Helper()
	Integration(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := "t_" + Suffix()
	admin, err := pgx.Connect(ctx, PGDSN())
	if err != nil {
		t.Fatalf("testenv: postgres at %s is not reachable (run `make stack-up`): %v", PGDSN(), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testenv: create schema: %v", err)
	}
	u, err := url.Parse(PGDSN())
	if err != nil {
		t.Fatalf("testenv: parse dsn: %v", err)
	}
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	s := &Schema{Name: name, DSN: u.String()}
	s.Pool, err = pgxpool.New(ctx, s.DSN)
	if err != nil {
		t.Fatalf("testenv: pool: %v", err)
	}
	t.Cleanup(func() {
		s.Pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, PGDSN())
		if err != nil {
			t.Logf("testenv: drop schema %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Logf("testenv: drop schema %s: %v", name, err)
		}
	})
	return s
}

// ApplyChatSchema creates the chat platform's tables (deploy/local/chat_schema.sql) in s.
func (s *Schema) ApplyChatSchema(t testing.TB) {
	t.Helper()
	sql, err := os.ReadFile(filepath.Join(RepoRoot(t), "deploy", "local", "chat_schema.sql"))
	if err != nil {
		t.Fatalf("testenv: read chat schema: %v", err)
	}
	if _, err := s.Pool.Exec(context.Background(), string(sql)); err != nil {
		t.Fatalf("testenv: apply chat schema: %v", err)
	}
}

// MQ is a unique topic and consumer group on the real broker.
type MQ struct {
	Config mq.Config
}

// NewMQ creates a job topic and its schedule topic (Config.ScheduleTopic: the ticker's
// fires), each with queues queues, and names a unique group; the topics are deleted at
// cleanup.
func NewMQ(t testing.TB, queues int) *MQ {
	t.Helper()
	Integration(t)
	if c, err := net.DialTimeout("tcp", NameServer(), 3*time.Second); err != nil {
		t.Fatalf("testenv: RocketMQ namesrv at %s is not reachable (run `make stack-up`): %v", NameServer(), err)
	} else {
		c.Close()
	}
	sfx := Suffix()
	cfg := mq.Config{
		NameServers:   []string{NameServer()},
		Topic:         "T_" + sfx,
		ConsumerGroup: "g_" + sfx,
		ProducerGroup: "p_" + sfx,
		BrokerAddrs:   []string{Broker()},
		QueueNums:     queues,
	}.WithDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := mq.EnsureTopics(ctx, cfg, cfg.Topic, cfg.ScheduleTopic); err != nil {
		t.Fatalf("testenv: create topic: %v", err)
	}
	t.Cleanup(func() {
		deleteTopic(t, cfg.Topic)
		deleteTopic(t, cfg.ScheduleTopic)
	})
	return &MQ{Config: cfg}
}

func deleteTopic(t testing.TB, topic string) {
	adm, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver([]string{NameServer()})))
	if err != nil {
		t.Logf("testenv: admin: %v", err)
		return
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := adm.DeleteTopic(ctx, admin.WithTopicDelete(topic), admin.WithBrokerAddrDelete(Broker()),
		admin.WithNameSrvAddr([]string{NameServer()})); err != nil {
		t.Logf("testenv: delete topic %s: %v", topic, err)
	}
}

// Eventually polls cond every 100 ms until it holds or timeout passes, then fails with msg.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: timed out after %s: %s", timeout, fmt.Sprintf(msg, args...))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// EnvInt reads a positive integer knob of a test or benchmark from the environment, or def
// when it is unset.
func EnvInt(t testing.TB, name string, def int) int {
	t.Helper()
	raw := os.Getenv(name)
	if raw == "" {
		return def
	}
	v, err := strconv.Atoi(raw)
	if err != nil || v <= 0 {
		t.Fatalf("testenv: %s=%q is not a positive integer", name, raw)
	}
	return v
}

// EnvDuration reads a duration knob of a test or benchmark from the environment, or def when
// it is unset.
func EnvDuration(t testing.TB, name string, def time.Duration) time.Duration {
	t.Helper()
	raw := os.Getenv(name)
	if raw == "" {
		return def
	}
	v, err := time.ParseDuration(raw)
	if err != nil {
		t.Fatalf("testenv: %s=%q is not a duration: %v", name, raw, err)
	}
	return v
}
