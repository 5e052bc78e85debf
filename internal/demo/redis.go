// Package demo seeds the local stack with data every job has real work in, for `make run`.
package demo

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// BlacklistPrefix is where the auth service keeps revoked tokens (handlers.TokenBlacklist's
// default prefix).
const BlacklistPrefix = "auth:block:token:"

// SeedRedis writes demo blacklist entries under BlacklistPrefix; see SeedRedisPrefix.
func SeedRedis(ctx context.Context, client redis.Cmdable) error {
	return SeedRedisPrefix(ctx, client, BlacklistPrefix, time.Now())
}

// SeedRedisPrefix writes a fixed set of revoked-token keys under prefix: six with a TTL, as
// the auth service writes them, and six that lost theirs (the leak token_blacklist repairs):
// three plain markers, a JWT that expires in two hours, a JSON value with exp, and a JWT that
// expired yesterday. Reseeding overwrites the same keys and brings back the missing TTLs, so
// every run leaves the same state and the job has the same work again.
func SeedRedisPrefix(ctx context.Context, client redis.Cmdable, prefix string, now time.Time) error {
	pipe := client.TxPipeline()
	for i := 1; i <= 6; i++ {
		pipe.Set(ctx, fmt.Sprintf("%sdemo-ttl-%d", prefix, i), "1", time.Duration(i)*time.Hour)
	}
	for i := 1; i <= 3; i++ {
		pipe.Set(ctx, fmt.Sprintf("%sdemo-leak-%d", prefix, i), "1", 0)
	}
	pipe.Set(ctx, prefix+"demo-leak-jwt", demoJWT(now.Add(2*time.Hour)), 0)
	pipe.Set(ctx, prefix+"demo-leak-json", fmt.Sprintf(`{"user_id":42,"exp":%d}`, now.Add(30*time.Minute).Unix()), 0)
	pipe.Set(ctx, prefix+"demo-leak-expired", demoJWT(now.Add(-24*time.Hour)), 0)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("seed redis blacklist: %w", err)
	}
	return nil
}

// demoJWT is an unsigned-looking token with a real payload; nothing verifies its signature.
func demoJWT(exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		enc([]byte(fmt.Sprintf(`{"sub":"demo-user","jti":"demo","exp":%d}`, exp.Unix()))) + "." + enc([]byte("demo-signature"))
}
