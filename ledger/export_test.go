package ledger

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// PruneRunsIn runs retention's pruning of runs older than cutoff in tx, which the caller
// commits: a test holds it open to see what a concurrent claim does meanwhile.
func PruneRunsIn(ctx context.Context, l *Ledger, tx pgx.Tx, cutoff time.Time, limit int) (int64, error) {
	if _, err := l.db.Exec(ctx, seedHorizonSQL, cutoff); err != nil {
		return 0, err
	}
	return pruneRuns(ctx, tx, cutoff, limit)
}
