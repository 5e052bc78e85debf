package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// job_runs_inflight stays exact while many transactions write the same few runs at once:
// claims that take each other's runs over, heartbeats, outcomes, cancel requests, give-ups,
// the repair statements, a previous release's plain updates and retention's deletes, racing.
func TestInflightStaysExactUnderConcurrentWrites(t *testing.T) {
	t.Parallel()
	l, s := newLedger(t)
	ctx := context.Background()
	const keys, workers, rounds = 6, 6, 40
	key := func(r *rand.Rand) job.Envelope {
		e := env(fmt.Sprintf("race-%d", r.IntN(keys)))
		e.Trigger = job.TriggerSchedule
		e.ScheduledAt = time.Now().Add(-time.Hour)
		return e
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			node := fmt.Sprintf("node-%d", w)
			for range rounds {
				e := key(r)
				var err error
				switch r.IntN(9) {
				case 0:
					_, err = l.RecordScheduled(ctx, e)
				case 1, 2:
					// stale_after 0: every running run is stale, so claims take each other's runs.
					var c ledger.Claim
					if c, err = l.ClaimRun(ctx, e, node, "m", 0); err == nil && c.Outcome == ledger.Claimed {
						st := []ledger.Status{ledger.StatusSucceeded, ledger.StatusRetrying, ledger.StatusFailed,
							ledger.StatusInterrupted}[r.IntN(4)]
						if _, err = l.Heartbeat(ctx, node, []ledger.Claim{c}); err == nil {
							err = l.Finish(ctx, c, ledger.Outcome{Status: st})
						}
					}
				case 3:
					_, err = s.Pool.Exec(ctx, `UPDATE job_runs SET status = 'abandoned', updated_at = now()
						WHERE job = $1 AND run_key = $2 AND status = 'running'`, e.Job, e.RunKey)
				case 4:
					_, err = s.Pool.Exec(ctx, `UPDATE job_runs SET status = 'running', attempt = attempt + 1, heartbeat_at = now()
						WHERE job = $1 AND run_key = $2 AND status IN ('scheduled', 'retrying', 'interrupted', 'abandoned')`, e.Job, e.RunKey)
				case 5:
					var id int64
					if s.Pool.QueryRow(ctx, `SELECT id FROM job_runs WHERE job = $1 AND run_key = $2`, e.Job, e.RunKey).Scan(&id) == nil {
						if _, err = l.RequestCancel(ctx, id, "alice"); errors.Is(err, ledger.ErrNotCancellable) {
							err = nil
						}
					}
				case 6:
					_, err = l.ReapStale(ctx, 0, 10)
					if err == nil {
						_, err = l.StuckRuns(ctx, 0, 10)
					}
				case 7:
					_, err = s.Pool.Exec(ctx, `DELETE FROM job_runs WHERE job = $1 AND run_key = $2
						AND status IN ('succeeded', 'failed', 'rejected', 'skipped', 'cancelled')`, e.Job, e.RunKey)
				case 8:
					var id int64
					if s.Pool.QueryRow(ctx, `SELECT id FROM job_runs WHERE job = $1 AND run_key = $2`, e.Job, e.RunKey).Scan(&id) == nil {
						_, err = l.GiveUp(ctx, id, ledger.StatusFailed, "gave up")
					}
				}
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "23503") {
					err = nil // a deadlock or a row deleted under a past attempt: the statement is undone whole
				}
				if errors.Is(err, ledger.ErrLostClaim) || errors.Is(err, ledger.ErrRecordedCancelled) ||
					errors.Is(err, ledger.ErrNotFound) || err != nil && strings.Contains(err.Error(), "vanished") {
					err = nil // taken over, cancelled or deleted meanwhile: what the race is for
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	requireInflightExact(t, s)
}
