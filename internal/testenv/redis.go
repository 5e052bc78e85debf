package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisAddr is the stack's Redis address.
func RedisAddr() string { return getenv("JOBSVC_REDIS_ADDR", "127.0.0.1:56379") }

// Redis is a client on the stack's Redis and a key prefix no other test uses.
type Redis struct {
	Client *redis.Client
	// Prefix ends with ':'; every key the test writes starts with it.
	Prefix string
}

// NewRedis connects to the stack's Redis and returns a unique prefix. Keys under the prefix
// are deleted at cleanup (with SCAN, so a large test does not block the server).
func NewRedis(t testing.TB) *Redis {
	t.Helper()
	Integration(t)
	c := redis.NewClient(&redis.Options{Addr: RedisAddr()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		t.Fatalf("testenv: redis at %s is not reachable (run `make stack-up`): %v", RedisAddr(), err)
	}
	r := &Redis{Client: c, Prefix: "t_" + Suffix() + ":"}
	t.Cleanup(func() {
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, r.Prefix+"*", 1000).Iterator()
		var batch []string
		flush := func() {
			if len(batch) > 0 {
				if err := c.Unlink(ctx, batch...).Err(); err != nil {
					t.Logf("testenv: delete redis keys under %s: %v", r.Prefix, err)
				}
				batch = batch[:0]
			}
		}
		for iter.Next(ctx) {
			if batch = append(batch, iter.Val()); len(batch) >= 500 {
				flush()
			}
		}
		flush()
		if err := iter.Err(); err != nil {
			t.Logf("testenv: scan redis keys under %s: %v", r.Prefix, err)
		}
	})
	return r
}

// Keys lists the keys matching pattern with SCAN (KEYS would block the shared server), each
// once: SCAN may repeat a key while Redis rehashes.
func (r *Redis) Keys(t testing.TB, pattern string) []string {
	t.Helper()
	var out []string
	seen := map[string]bool{}
	iter := r.Client.Scan(context.Background(), 0, pattern, 1000).Iterator()
	for iter.Next(context.Background()) {
		if k := iter.Val(); !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("testenv: scan %s: %v", pattern, err)
	}
	return out
}
