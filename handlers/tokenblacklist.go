package handlers

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chatplat/job-service/job"
)

// TokenBlacklistKind is the job kind of TokenBlacklist.
const TokenBlacklistKind = "token_blacklist"

// TokenBlacklistPolicy is token_blacklist's default run policy: the design's hourly. A missed
// hour is skipped: the next run does the same work.
func TokenBlacklistPolicy() job.Spec {
	return job.Spec{Schedule: "0 0 * * * *", Timeout: 10 * time.Minute, Misfire: job.MisfireSkip}
}

// TokenBlacklistConfig configures the token_blacklist job.
type TokenBlacklistConfig struct {
	// Prefix of the blacklist keys; the job scans Prefix + "*". Glob characters in it are
	// matched literally.
	Prefix string `yaml:"prefix"`
	// ScanCount is the COUNT hint of each SCAN call: how much of the keyspace one call walks.
	ScanCount int64 `yaml:"scan_count"`
	// BatchSize is how many keys go into one pipeline (TTL, GET, EXPIRE).
	BatchSize int `yaml:"batch_size"`
	// MaxTokenLifetime is the longest an access token can be valid. A blacklisted token whose
	// expiry cannot be read is kept this long: by then it has expired on its own.
	MaxTokenLifetime time.Duration `yaml:"max_token_lifetime"`
	// SafetyMargin is added to a token's own exp (and is the whole TTL when exp has passed),
	// covering the leeway verifiers allow for clock skew.
	SafetyMargin time.Duration `yaml:"safety_margin"`
}

// WithDefaults fills unset fields.
func (c TokenBlacklistConfig) WithDefaults() TokenBlacklistConfig {
	if c.Prefix == "" {
		c.Prefix = "auth:block:token:"
	}
	if c.ScanCount == 0 {
		c.ScanCount = 1000
	}
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.MaxTokenLifetime == 0 {
		c.MaxTokenLifetime = 7 * 24 * time.Hour
	}
	if c.SafetyMargin == 0 {
		c.SafetyMargin = 10 * time.Minute
	}
	return c
}

// Validate names the first bad key.
func (c TokenBlacklistConfig) Validate() error {
	switch {
	case c.Prefix == "":
		return errors.New("prefix: required")
	case c.ScanCount < 1 || c.ScanCount > 100000:
		return fmt.Errorf("scan_count: %d is outside 1..100000", c.ScanCount)
	case c.BatchSize < 1 || c.BatchSize > 10000:
		return fmt.Errorf("batch_size: %d is outside 1..10000", c.BatchSize)
	case c.MaxTokenLifetime < time.Minute:
		return fmt.Errorf("max_token_lifetime: %s is below 1m", c.MaxTokenLifetime)
	case c.SafetyMargin < 10*time.Second:
		// EXPIRE with a TTL of 0 deletes the key at once, which is exactly the un-revoking
		// this job must never do; a floor keeps the key for a while in every case.
		return fmt.Errorf("safety_margin: %s is below 10s", c.SafetyMargin)
	}
	return nil
}

// TokenBlacklistArgs are the run parameters of token_blacklist.
type TokenBlacklistArgs struct {
	// DryRun counts what would be fixed without setting any TTL.
	DryRun bool `json:"dry_run,omitempty"`
}

// TokenBlacklist finds blacklist keys that lost their TTL and gives them one. A key without
// a TTL is a leak that grows forever, but deleting it would un-revoke a token, so the job only
// ever sets expiries (EXPIRE ... NX), never deletes: the key lives until the token it blocks
// has expired on its own.
type TokenBlacklist struct {
	rdb *redis.Client
	cfg TokenBlacklistConfig
	now func() time.Time
	log *slog.Logger

	// beforeExpire, in tests, runs between reading values and EXPIRE (with the keys about to
	// get a TTL): where other writers race us.
	beforeExpire func(keys []string)
}

// NewTokenBlacklist returns the token_blacklist handler.
func NewTokenBlacklist(rdb *redis.Client, cfg TokenBlacklistConfig, now func() time.Time, log *slog.Logger) (*TokenBlacklist, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("token_blacklist config: %w", err)
	}
	return &TokenBlacklist{rdb: rdb, cfg: cfg, now: now, log: log}, nil
}

// Kind implements Handler.
func (h *TokenBlacklist) Kind() string { return TokenBlacklistKind }

// TokenBlacklistResult is the run's result JSON.
type TokenBlacklistResult struct {
	Prefix string `json:"prefix"`
	DryRun bool   `json:"dry_run,omitempty"`
	// Scanned counts SCAN's answers; SCAN may return a key twice while Redis rehashes.
	Scanned int64 `json:"scanned"`
	WithTTL int64 `json:"with_ttl"`
	Fixed   Fixed `json:"fixed"`
	// AlreadyGone counts keys that expired or were deleted between SCAN and our commands.
	AlreadyGone int64 `json:"already_gone"`
	// TTLSetMeanwhile counts keys that got a TTL from someone else between TTL and EXPIRE;
	// EXPIRE ... NX left theirs in place.
	TTLSetMeanwhile int64 `json:"ttl_set_meanwhile"`
}

// Fixed counts keys given a TTL, by where the TTL came from.
type Fixed struct {
	Total int64 `json:"total"`
	// FromExp: the token's own exp (from a JWT, a JSON value or a unix time) plus the margin.
	FromExp int64 `json:"from_exp"`
	// ExpPassed: of FromExp, those whose token had already expired; they get the margin only.
	ExpPassed int64 `json:"exp_passed"`
	// MaxLifetime: no exp could be read, so the maximum token lifetime.
	MaxLifetime int64 `json:"max_lifetime"`
}

// Run implements Handler.
func (h *TokenBlacklist) Run(ctx context.Context, run *job.Run[TokenBlacklistArgs]) (any, error) {
	res := TokenBlacklistResult{Prefix: h.cfg.Prefix, DryRun: run.Args.DryRun}
	pattern := escapeGlob(h.cfg.Prefix) + "*"
	var cursor uint64
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		keys, next, err := h.rdb.Scan(ctx, cursor, pattern, h.cfg.ScanCount).Result()
		if err != nil {
			return res, fmt.Errorf("scan %s: %w", pattern, err)
		}
		res.Scanned += int64(len(keys))
		for start := 0; start < len(keys); start += h.cfg.BatchSize {
			end := min(start+h.cfg.BatchSize, len(keys))
			if err := h.batch(ctx, keys[start:end], run.Args.DryRun, &res); err != nil {
				return res, err
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	// Key names and values are (revoked) credentials: only counts are logged.
	h.log.InfoContext(ctx, "token blacklist checked", "scanned", res.Scanned, "with_ttl", res.WithTTL,
		"fixed", res.Fixed.Total, "from_exp", res.Fixed.FromExp, "max_lifetime", res.Fixed.MaxLifetime,
		"already_gone", res.AlreadyGone, "dry_run", res.DryRun)
	return res, nil
}

type leak struct {
	key     string
	ttl     time.Duration
	fromExp bool
	passed  bool
}

// batch handles one pipeline's worth of keys: TTLs, then values of the keys without one,
// then EXPIRE NX on those.
func (h *TokenBlacklist) batch(ctx context.Context, keys []string, dryRun bool, res *TokenBlacklistResult) error {
	pipe := h.rdb.Pipeline()
	ttls := make([]*redis.DurationCmd, len(keys))
	for i, k := range keys {
		ttls[i] = pipe.TTL(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("ttl pipeline: %w", err)
	}
	var noTTL []string
	for i, c := range ttls {
		switch c.Val() {
		case -2: // gone since SCAN saw it
			res.AlreadyGone++
		case -1:
			noTTL = append(noTTL, keys[i])
		default:
			res.WithTTL++
		}
	}
	if len(noTTL) == 0 {
		return nil
	}

	pipe = h.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(noTTL))
	for i, k := range noTTL {
		gets[i] = pipe.Get(ctx, k)
	}
	// Per-command errors (redis.Nil, WRONGTYPE) are read below; only a failed round trip stops us.
	if _, err := pipe.Exec(ctx); err != nil && !isCommandError(err) {
		return fmt.Errorf("get pipeline: %w", err)
	}
	now := h.now()
	leaks := make([]leak, 0, len(noTTL))
	for i, c := range gets {
		val, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
			res.AlreadyGone++
			continue
		case err != nil && !isWrongType(err):
			return fmt.Errorf("get: %w", err)
		}
		leaks = append(leaks, h.ttlFor(strings.TrimPrefix(noTTL[i], h.cfg.Prefix), val, now))
	}
	if dryRun {
		for _, l := range leaks {
			res.Fixed.count(l)
		}
		return nil
	}

	if h.beforeExpire != nil {
		keys := make([]string, len(leaks))
		for i, l := range leaks {
			keys[i] = l.key
		}
		h.beforeExpire(keys)
	}
	pipe = h.rdb.Pipeline()
	expires := make([]*redis.BoolCmd, len(leaks))
	exists := make([]*redis.IntCmd, len(leaks))
	for i, l := range leaks {
		// NX: a TTL someone set meanwhile wins; EXPIRE on a missing key is a no-op, so a key
		// deleted meanwhile is not recreated. Relative seconds, so Redis's clock is the one
		// that counts down, not ours.
		expires[i] = pipe.ExpireNX(ctx, l.key, l.ttl)
		exists[i] = pipe.Exists(ctx, l.key)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("expire pipeline: %w", err)
	}
	for i, l := range leaks {
		switch {
		case expires[i].Val():
			res.Fixed.count(l)
		case exists[i].Val() == 0:
			res.AlreadyGone++
		default:
			res.TTLSetMeanwhile++
		}
	}
	return nil
}

func (f *Fixed) count(l leak) {
	f.Total++
	switch {
	case !l.fromExp:
		f.MaxLifetime++
	case l.passed:
		f.FromExp++
		f.ExpPassed++
	default:
		f.FromExp++
	}
}

// ttlFor decides the TTL of a key without one: until the token's own exp plus the margin,
// the margin alone when exp has passed, or the maximum token lifetime when no exp is known.
func (h *TokenBlacklist) ttlFor(suffix, value string, now time.Time) leak {
	exp, bare, ok := tokenExp(suffix)
	if !ok {
		exp, bare, ok = tokenExp(value)
	}
	// A bare number is only a guess at an exp (it could be a user id). Believing a wrong one
	// could shorten the TTL and un-revoke the token, so it counts only when it falls within
	// one token lifetime of now, where an exp of a live or recently expired token must be.
	if ok && bare && (exp.Before(now.Add(-h.cfg.MaxTokenLifetime)) || exp.After(now.Add(h.cfg.MaxTokenLifetime))) {
		ok = false
	}
	if !ok {
		return leak{key: h.cfg.Prefix + suffix, ttl: h.cfg.MaxTokenLifetime}
	}
	left := exp.Sub(now)
	l := leak{key: h.cfg.Prefix + suffix, fromExp: true}
	if left <= 0 {
		left, l.passed = 0, true
	}
	// EXPIRE takes whole seconds: round up, never down, so the key outlives the token.
	l.ttl = (left + h.cfg.SafetyMargin + time.Second - 1).Truncate(time.Second)
	return l
}

// tokenExp reads an expiry from a blacklist key's suffix or value: a JWT (payload decoded,
// not verified: the token is already revoked, we only need its lifetime), a JSON object with
// "exp", or a bare unix time in seconds or milliseconds (bare reports that last case).
func tokenExp(s string) (exp time.Time, bare, ok bool) {
	s = strings.TrimSpace(strings.TrimPrefix(s, "Bearer "))
	if s == "" {
		return time.Time{}, false, false
	}
	if parts := strings.Split(s, "."); len(parts) == 3 && parts[0] != "" && parts[1] != "" {
		payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
		if err != nil {
			return time.Time{}, false, false
		}
		exp, ok = jsonExp(payload)
		return exp, false, ok
	}
	if s[0] == '{' {
		exp, ok = jsonExp([]byte(s))
		return exp, false, ok
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		exp, ok = unixExp(n)
		return exp, true, ok
	}
	return time.Time{}, false, false
}

func jsonExp(b []byte) (time.Time, bool) {
	var claims struct {
		Exp json.RawMessage `json:"exp"`
	}
	if err := json.Unmarshal(b, &claims); err != nil || len(claims.Exp) == 0 {
		return time.Time{}, false
	}
	raw := string(bytes.Trim(claims.Exp, `"`)) // some issuers write exp as a string
	if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
		return unixExp(n)
	}
	if f, err := strconv.ParseFloat(raw, 64); err == nil && f < 1e15 {
		return unixExp(int64(f))
	}
	return time.Time{}, false
}

// unixExp accepts seconds or milliseconds between 2001 and about 5000; anything else is not
// an expiry we trust (a token id that happens to be numeric, say).
func unixExp(n int64) (time.Time, bool) {
	switch {
	case n >= 1e9 && n < 1e11:
		return time.Unix(n, 0), true
	case n >= 1e12 && n < 1e14:
		return time.UnixMilli(n), true
	}
	return time.Time{}, false
}

// escapeGlob makes s match itself in a SCAN MATCH pattern.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\', '^':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isWrongType(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE") }

// isCommandError tells a per-command reply error (the pipeline ran) from a connection failure.
func isCommandError(err error) bool {
	var re redis.Error
	return errors.Is(err, redis.Nil) || (errors.As(err, &re) && !errors.Is(err, context.Canceled))
}
