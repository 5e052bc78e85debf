package handlers

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlertest"
	"github.com/chatplat/job-service/internal/testenv"
)

// fakeJWT builds an unsigned token with the given payload; the job never verifies signatures.
func fakeJWT(payload string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(payload)) + "." + enc([]byte("sig"))
}

func TestTokenExp(t *testing.T) {
	t.Parallel()
	at := time.Unix(1800000000, 0)
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{fakeJWT(`{"sub":"u1","exp":1800000000}`), at, true},
		{"Bearer " + fakeJWT(`{"exp":1800000000}`), at, true},
		{fakeJWT(`{"sub":"u1"}`), time.Time{}, false},
		{`{"user":7,"exp":1800000000}`, at, true},
		{`{"exp":"1800000000"}`, at, true},
		{`{"exp":1800000000.5}`, at, true},
		{"1800000000", at, true},
		{"1800000000000", at, true}, // milliseconds
		{"42", time.Time{}, false},  // a token id, not a time
		{"1", time.Time{}, false},   // the usual "blocked" marker
		{"", time.Time{}, false},
		{"a.b", time.Time{}, false},
		{"x.!!!.y", time.Time{}, false},
		{"not-json{", time.Time{}, false},
	} {
		got, _, ok := tokenExp(tc.in)
		require.Equal(t, tc.ok, ok, tc.in)
		require.True(t, tc.want.Equal(got), "%s: %s", tc.in, got)
	}
}

func TestEscapeGlob(t *testing.T) {
	t.Parallel()
	require.Equal(t, `auth:block:token:`, escapeGlob("auth:block:token:"))
	require.Equal(t, `a\*b\?c\[d\]\\`, escapeGlob(`a*b?c[d]\`))
}

func TestTokenBlacklistConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, TokenBlacklistConfig{}.WithDefaults().Validate())
	bad := TokenBlacklistConfig{SafetyMargin: time.Second}.WithDefaults()
	require.ErrorContains(t, bad.Validate(), "safety_margin")
	bad = TokenBlacklistConfig{BatchSize: -1}.WithDefaults()
	require.ErrorContains(t, bad.Validate(), "batch_size")
}

func blacklistRun(dry bool) handlertest.Job[TokenBlacklistArgs] {
	return handlertest.Job[TokenBlacklistArgs]{Args: TokenBlacklistArgs{DryRun: dry}}
}

func newBlacklist(t *testing.T, r *testenv.Redis, now time.Time, cfg TokenBlacklistConfig) *TokenBlacklist {
	t.Helper()
	cfg.Prefix = r.Prefix + "auth:block:token:"
	h, err := NewTokenBlacklist(r.Client, cfg, func() time.Time { return now }, testenv.Logger(t))
	require.NoError(t, err)
	return h
}

func ttlOf(t *testing.T, rdb *redis.Client, key string) time.Duration {
	t.Helper()
	d, err := rdb.TTL(context.Background(), key).Result()
	require.NoError(t, err)
	return d
}

func TestTokenBlacklistSetsTTLsAndNeverDeletes(t *testing.T) {
	r := testenv.NewRedis(t)
	ctx := context.Background()
	rdb := r.Client
	now := time.Now()
	p := r.Prefix + "auth:block:token:"
	exp := now.Add(3 * time.Hour).Unix()

	seed := map[string]string{
		"has-ttl":   "1",
		"plain":     "1",
		"jwt-value": fakeJWT(fmt.Sprintf(`{"sub":"u1","exp":%d}`, exp)),
		"json":      fmt.Sprintf(`{"user":9,"exp":%d}`, now.Add(2*time.Hour).Unix()),
		"unix":      fmt.Sprint(now.Add(time.Hour).Unix()),
		// A number far from now is not believed to be an exp (a user id, say): max lifetime.
		"user-id": "1234567890",
		"expired": fakeJWT(fmt.Sprintf(`{"exp":%d}`, now.Add(-48*time.Hour).Unix())),
		fakeJWT(fmt.Sprintf(`{"exp":%d}`, now.Add(5*time.Hour).Unix())): "1", // the token is the key
	}
	for k, v := range seed {
		require.NoError(t, rdb.Set(ctx, p+k, v, 0).Err())
	}
	require.NoError(t, rdb.Expire(ctx, p+"has-ttl", 30*time.Minute).Err())
	seededAt := time.Now()
	// Same prefix family, outside the pattern: never touched.
	require.NoError(t, rdb.Set(ctx, r.Prefix+"auth:block:user:1", "1", 0).Err())
	// A hash under the prefix: GET fails with WRONGTYPE, so it gets the maximum lifetime.
	require.NoError(t, rdb.HSet(ctx, p+"hash", "exp", "1").Err())

	margin := 10 * time.Minute
	h := newBlacklist(t, r, now, TokenBlacklistConfig{ScanCount: 2, BatchSize: 3, MaxTokenLifetime: 7 * 24 * time.Hour, SafetyMargin: margin})

	// Dry run: counts, changes nothing. (Counts are "at least": the Redis is shared, and SCAN
	// may repeat a key while another test's keys make it rehash.)
	res, err := handlertest.Run(ctx, h, blacklistRun(true))
	require.NoError(t, err)
	dry := res.(TokenBlacklistResult)
	require.GreaterOrEqual(t, dry.Scanned, int64(9))
	require.GreaterOrEqual(t, dry.Fixed.Total, int64(8))
	require.Equal(t, time.Duration(-1), ttlOf(t, rdb, p+"plain"))

	fixedAt := time.Now()
	res, err = handlertest.Run(ctx, h, blacklistRun(false))
	require.NoError(t, err)
	got := res.(TokenBlacklistResult)
	require.GreaterOrEqual(t, got.Scanned, int64(9))
	require.GreaterOrEqual(t, got.WithTTL, int64(1))
	// Exact: a repeated key already has its TTL when it comes back, so nothing is fixed twice.
	require.Equal(t, Fixed{Total: 8, FromExp: 5, ExpPassed: 1, MaxLifetime: 3}, got.Fixed)
	require.Zero(t, got.AlreadyGone)

	// A TTL counts down from when it was set: it is at most what was set, and at least that
	// less the time since (a loaded host takes seconds between the run and this check).
	nearSince := func(key string, want time.Duration, setAt time.Time) {
		t.Helper()
		d := ttlOf(t, rdb, p+key)
		require.LessOrEqual(t, d, want+time.Second, "%s: ttl %s, want about %s", key, d, want)
		require.GreaterOrEqual(t, d, want-time.Since(setAt)-2*time.Second, "%s: ttl %s, want about %s", key, d, want)
	}
	near := func(key string, want time.Duration) { t.Helper(); nearSince(key, want, fixedAt) }
	nearSince("has-ttl", 30*time.Minute, seededAt) // untouched
	near("jwt-value", 3*time.Hour+margin)
	near("json", 2*time.Hour+margin)
	near("unix", time.Hour+margin)
	near("expired", margin) // expired token: kept for the margin, not deleted
	near("plain", 7*24*time.Hour)
	near("hash", 7*24*time.Hour)
	near("user-id", 7*24*time.Hour)
	near(fakeJWT(fmt.Sprintf(`{"exp":%d}`, now.Add(5*time.Hour).Unix())), 5*time.Hour+margin)
	require.Equal(t, time.Duration(-1), ttlOf(t, rdb, r.Prefix+"auth:block:user:1"))

	// The unsafe case: no key was deleted, so no token was un-revoked.
	for k, v := range seed {
		val, err := rdb.Get(ctx, p+k).Result()
		require.NoError(t, err, "key %s must still exist", k)
		require.Equal(t, v, val)
	}

	// A second run finds nothing to fix and does not shorten or lengthen any TTL (NX).
	res, err = handlertest.Run(ctx, h, blacklistRun(false))
	require.NoError(t, err)
	require.GreaterOrEqual(t, res.(TokenBlacklistResult).WithTTL, int64(9))
	require.Zero(t, res.(TokenBlacklistResult).Fixed.Total)
}

// TestTokenBlacklistRacesWithOtherWriters covers keys that change after the job saw them
// without a TTL and before its EXPIRE: one deleted (must not be recreated) and one given a TTL
// by the auth service (must keep it).
func TestTokenBlacklistRacesWithOtherWriters(t *testing.T) {
	r := testenv.NewRedis(t)
	ctx := context.Background()
	rdb := r.Client
	p := r.Prefix + "auth:block:token:"
	for _, k := range []string{"deleted", "ttl-set", "fine"} {
		require.NoError(t, rdb.Set(ctx, p+k, "1", 0).Err())
	}
	h := newBlacklist(t, r, time.Now(), TokenBlacklistConfig{})
	// The race is staged on the batch that is about to EXPIRE each key: SCAN may return the
	// keys over several pages when the shared Redis holds many other keys.
	h.beforeExpire = func(keys []string) {
		for _, k := range keys {
			switch k {
			case p + "deleted":
				require.NoError(t, rdb.Del(ctx, k).Err())
			case p + "ttl-set":
				require.NoError(t, rdb.Expire(ctx, k, 90*time.Second).Err())
			}
		}
	}
	res, err := handlertest.Run(ctx, h, blacklistRun(false))
	require.NoError(t, err)
	got := res.(TokenBlacklistResult)
	require.EqualValues(t, 1, got.Fixed.Total)
	require.EqualValues(t, 1, got.AlreadyGone)
	require.EqualValues(t, 1, got.TTLSetMeanwhile)
	n, err := rdb.Exists(ctx, p+"deleted").Result()
	require.NoError(t, err)
	require.Zero(t, n, "a key deleted meanwhile is not recreated")
	ttl := ttlOf(t, rdb, p+"ttl-set")
	require.Positive(t, ttl)
	require.LessOrEqual(t, ttl, 90*time.Second, "the TTL set meanwhile is kept, not replaced by ours")
	require.Greater(t, ttlOf(t, rdb, p+"fine"), 6*24*time.Hour)
}

func TestTokenBlacklistScansManyKeys(t *testing.T) {
	r := testenv.NewRedis(t)
	ctx := context.Background()
	rdb := r.Client
	p := r.Prefix + "auth:block:token:"
	const n = 5000
	pipe := rdb.Pipeline()
	for i := range n {
		if i%2 == 0 {
			pipe.Set(ctx, fmt.Sprintf("%stok-%d", p, i), "1", time.Hour)
		} else {
			pipe.Set(ctx, fmt.Sprintf("%stok-%d", p, i), "1", 0)
		}
	}
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)
	h := newBlacklist(t, r, time.Now(), TokenBlacklistConfig{ScanCount: 500, BatchSize: 200})
	res, err := handlertest.Run(ctx, h, blacklistRun(false))
	require.NoError(t, err)
	got := res.(TokenBlacklistResult)
	// SCAN may repeat a key, never skip one present throughout.
	require.GreaterOrEqual(t, got.Scanned, int64(n))
	require.EqualValues(t, n/2, got.Fixed.Total)
	require.EqualValues(t, n/2, got.Fixed.MaxLifetime)

	// Every key still exists and has a TTL.
	var cursor uint64
	seen := 0
	for {
		keys, next, err := rdb.Scan(ctx, cursor, p+"*", 1000).Result()
		require.NoError(t, err)
		pipe := rdb.Pipeline()
		cmds := make([]*redis.DurationCmd, len(keys))
		for i, k := range keys {
			cmds[i] = pipe.TTL(ctx, k)
		}
		_, err = pipe.Exec(ctx)
		require.NoError(t, err)
		for _, c := range cmds {
			require.Greater(t, c.Val(), time.Duration(0))
		}
		seen += len(keys)
		if cursor = next; cursor == 0 {
			break
		}
	}
	require.GreaterOrEqual(t, seen, n)
}

func BenchmarkTokenBlacklistScan(b *testing.B) {
	r := testenv.NewRedis(b)
	ctx := context.Background()
	p := r.Prefix + "auth:block:token:"
	const n = 20000
	pipe := r.Client.Pipeline()
	for i := range n {
		pipe.Set(ctx, fmt.Sprintf("%stok-%d", p, i), "1", time.Hour)
	}
	_, err := pipe.Exec(ctx)
	require.NoError(b, err)
	h, err := NewTokenBlacklist(r.Client, TokenBlacklistConfig{Prefix: p}, time.Now, testenv.Logger(b))
	require.NoError(b, err)
	b.ResetTimer()
	for b.Loop() {
		_, err := handlertest.Run(ctx, h, blacklistRun(true))
		require.NoError(b, err)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")
}
