package ticker

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// heldLease is a lease its ticker always holds: these tests change leaders by starting a new
// ticker, whose cursor starts empty, as a new leader's does.
type heldLease struct{}

func (heldLease) TryAcquire(context.Context) (bool, error) { return true, nil }
func (heldLease) Check(context.Context) error              { return nil }
func (heldLease) Fresh(context.Context) error              { return nil }
func (heldLease) Release(context.Context)                  {}

// sentPublisher remembers the occurrences it was asked to send, without a broker.
type sentPublisher struct {
	mu   sync.Mutex
	sent map[time.Time]int
}

func (p *sentPublisher) Send(_ context.Context, env job.Envelope, _ time.Time) (job.Receipt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sent == nil {
		p.sent = map[time.Time]int{}
	}
	p.sent[env.ScheduledAt.UTC()]++
	return job.Receipt{MsgID: "m-" + env.RunKey}, nil
}

func (p *sentPublisher) Republish(context.Context, job.Envelope, int) (string, error) {
	return "r", nil
}

func (p *sentPublisher) count(at time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent[at.UTC()]
}

// clock is a test clock the test moves.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

func newPausedWorld(t *testing.T) (*ledger.Ledger, *testenv.Schema) {
	t.Helper()
	s := testenv.NewSchema(t)
	require.NoError(t, ledger.Migrate(context.Background(), s.Pool))
	return ledger.New(s.Pool), s
}

// Pause is recorded: an occurrence that passes while its job is paused is recorded skipped
// (reason paused) by the leader, so after resume a new leader, which starts from the ledger,
// neither fires it as a misfire nor fires it at all.
func TestPausedOccurrenceNeverFiresAfterResumeAndLeaderChange(t *testing.T) {
	t.Parallel()
	l, _ := newPausedWorld(t)
	ctx := context.Background()
	specs := map[string]job.Spec{"minutely": job.Spec{Schedule: "0 * * * * *", Misfire: job.MisfireFireOnce,
		MisfireBound: time.Hour}.WithDefaults()}
	cfg := Config{Interval: time.Second, Lookahead: 5 * time.Second, MisfireTolerance: 10 * time.Second}
	base := time.Date(2026, 11, 3, 10, 0, 30, 0, time.UTC)
	clk := &clock{now: base}
	pub := &sentPublisher{}
	leader := func(name string) *Ticker {
		tk, err := New(cfg, name, specs, l, pub, heldLease{}, testenv.Logger(t), clk.Now)
		require.NoError(t, err)
		return tk
	}
	a := leader("a")
	require.NoError(t, a.Tick(ctx))
	clk.Set(base.Add(28 * time.Second)) // 10:00:58
	require.NoError(t, a.Tick(ctx))
	fired := base.Add(30 * time.Second) // 10:01:00
	require.Equal(t, 1, pub.count(fired), "the occurrence before the pause is published")

	require.NoError(t, l.Pause(ctx, "minutely", "alice"))
	paused := base.Add(90 * time.Second) // 10:02:00
	clk.Set(paused.Add(5 * time.Second))
	require.NoError(t, a.Tick(ctx))
	require.NoError(t, l.Resume(ctx, "minutely"))
	clk.Set(paused.Add(20 * time.Second))
	require.NoError(t, a.Tick(ctx))

	// A new leader after the resume.
	b := leader("b")
	clk.Set(paused.Add(21 * time.Second))
	require.NoError(t, b.Tick(ctx))
	require.Zero(t, pub.count(paused), "the occurrence that passed while paused is never fired")

	runs, err := l.ListRuns(ctx, ledger.RunFilter{Job: "minutely", RunKey: job.ScheduleRunKey("minutely", paused)})
	require.NoError(t, err)
	require.Len(t, runs, 1, "the paused occurrence is recorded")
	require.Equal(t, ledger.StatusSkipped, runs[0].Status)
	require.JSONEq(t, `{"skipped":"paused","occurrences":1}`, string(runs[0].Result))

	// The job runs again after the resume.
	next := paused.Add(time.Minute)
	clk.Set(next.Add(-2 * time.Second))
	require.NoError(t, b.Tick(ctx))
	require.Equal(t, 1, pub.count(next))
}

// The cursor survives retention: once retention pruned every row of a daily job (its nodes
// were down for weeks), the next leader still knows its last occurrence, so the occurrences
// missed since are handled by the misfire policy (recorded skipped), not silently dropped as
// if the job were new, and the pruned one is not fired again.
func TestMissedOccurrencesAfterRetentionAreRecordedNotDropped(t *testing.T) {
	t.Parallel()
	l, s := newPausedWorld(t)
	ctx := context.Background()
	specs := map[string]job.Spec{"daily": job.Spec{Schedule: "0 0 0 * * *", Misfire: job.MisfireSkip}.WithDefaults()}
	cfg := Config{Interval: time.Second, Lookahead: 5 * time.Second, MisfireTolerance: 10 * time.Second}
	now := time.Now().UTC()
	last := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -40)
	clk := &clock{now: last.Add(-2 * time.Second)}
	pub := &sentPublisher{}
	a, err := New(cfg, "a", specs, l, pub, heldLease{}, testenv.Logger(t), clk.Now)
	require.NoError(t, err)
	require.NoError(t, a.Tick(ctx))
	require.Equal(t, 1, pub.count(last))
	c, err := l.ClaimRun(ctx, job.Envelope{Job: "daily", RunKey: job.ScheduleRunKey("daily", last), Trigger: job.TriggerSchedule,
		ScheduledAt: last, Shard: job.Shard{Total: 1}}, "n", "m", time.Minute)
	require.NoError(t, err)
	require.NoError(t, l.Finish(ctx, c, ledger.Outcome{Status: ledger.StatusSucceeded}))
	_, err = s.Pool.Exec(ctx, `UPDATE job_runs SET created_at = scheduled_at`)
	require.NoError(t, err)
	n, err := l.PruneBatch(ctx, ledger.PruneRuns, now.AddDate(0, 0, -30), 100)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	clk.Set(now)
	b, err := New(cfg, "b", specs, l, pub, heldLease{}, testenv.Logger(t), clk.Now)
	require.NoError(t, err)
	require.NoError(t, b.Tick(ctx))
	require.Equal(t, 1, pub.count(last), "the pruned occurrence is not fired again")
	skipped, err := l.ListRuns(ctx, ledger.RunFilter{Job: "daily", Status: ledger.StatusSkipped})
	require.NoError(t, err)
	require.Len(t, skipped, 1, "the missed occurrences are recorded")
	var why struct {
		Missed int `json:"missed"`
	}
	require.NoError(t, json.Unmarshal(skipped[0].Result, &why))
	require.Equal(t, 40, why.Missed, "every day since the pruned occurrence")
}
