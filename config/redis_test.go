package config

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRedisAndAlertsSections(t *testing.T) {
	t.Parallel()
	base := "postgres: {dsn: postgres://x@127.0.0.1/db}\n"
	env := map[string]string{"JOBSERVICE_REDIS_PASSWORD": "r-secret", "JOBSERVICE_SMTP_PASSWORD": "m-secret"}
	cfg, err := parse([]byte(base+`
redis: {addr: "10.0.0.5:6379", db: 2}
alerts:
  webhook_url: https://hooks.example/jobs
  smtp: {host: mail.example, port: 587, from: jobs@example.com, to: [oncall@example.com], username: jobs}
`), func(k string) string { return env[k] })
	require.NoError(t, err)
	require.Equal(t, "r-secret", cfg.Redis.Password)
	require.Equal(t, 2, cfg.Redis.DB)
	require.Equal(t, "m-secret", cfg.Alerts.SMTP.Password)
	require.True(t, cfg.Alerts.Enabled())
	require.Equal(t, 24*time.Hour, cfg.Alerts.Window)

	// Defaults: alerts off, Redis on its usual port.
	cfg, err = parse([]byte(base), noEnv)
	require.NoError(t, err)
	require.False(t, cfg.Alerts.Enabled())
	require.Equal(t, "127.0.0.1:6379", cfg.Redis.Addr)

	for yaml, want := range map[string]string{
		"redis: {addr: nohost}\n":                  "redis.addr",
		"alerts: {webhook_url: 'not a url'}\n":     "alerts.webhook_url",
		"alerts: {smtp: {host: m, from: a@b.c}}\n": "alerts.smtp.to",
	} {
		_, err := parse([]byte(base+yaml), noEnv)
		require.ErrorContains(t, err, want, yaml)
	}
}
