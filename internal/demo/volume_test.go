package demo

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// TestVolumeSeedRefusesNonLocalDatabases: the seeders write tens of millions of rows, so a
// DSN that is not loopback is refused before anything connects.
func TestVolumeSeedRefusesNonLocalDatabases(t *testing.T) {
	t.Parallel()
	for dsn, ok := range map[string]bool{
		"postgres://u@127.0.0.1:55432/db":     true,
		"postgres://u@localhost:55432/db":     true,
		"postgres://u@[::1]:55432/db":         true,
		"postgres://u@db.example.com:5432/db": false,
		"postgres://u@10.0.0.7:5432/db":       false,
	} {
		cfg, err := pgxpool.ParseConfig(dsn)
		require.NoError(t, err)
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg) // connects lazily
		require.NoError(t, err)
		err = RequireLocal(pool)
		if ok {
			require.NoError(t, err, dsn)
			pool.Close()
			continue
		}
		require.ErrorContains(t, err, "only loopback", dsn)
		require.ErrorContains(t, SeedMessageVolume(context.Background(), pool, ProductionVolume(), time.Now(), 0), "only loopback")
		_, err = SeedAuditVolume(context.Background(), pool, ProductionVolume(), time.Now())
		require.ErrorContains(t, err, "only loopback")
		pool.Close()
	}
}
