package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAdminConfigValidate(t *testing.T) {
	t.Parallel()
	base := "postgres: {dsn: postgres://x@127.0.0.1/db}\n"
	for _, c := range []struct{ yaml, want string }{
		{"admin: {listen: nonsense}\n", "config: admin.listen"},
		{"admin: {protect_reads: true}\n", "config: admin.protect_reads"},
	} {
		_, err := parse([]byte(base+c.yaml), nil)
		require.ErrorContains(t, err, c.want, c.yaml)
	}
	cfg, err := parse([]byte(base+"admin: {listen: '0.0.0.0:9090', token: abc, protect_reads: true}\n"), nil)
	require.NoError(t, err)
	require.True(t, cfg.Admin.ProtectReads)
	cfg, err = parse([]byte(base), nil)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", cfg.Admin.Listen, "loopback by default")
}
