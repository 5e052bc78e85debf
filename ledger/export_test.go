package ledger

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
)

// NewOldSchema is a fresh schema migrated as the release before migration 00050 left it
// (attempts in their own table).
func NewOldSchema(t *testing.T) *pgxpool.Pool {
	t.Helper()
	s := testenv.NewSchema(t)
	require.NoError(t, migrateTo(context.Background(), s.Pool, 49))
	return s.Pool
}
