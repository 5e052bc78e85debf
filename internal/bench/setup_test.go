// Package bench holds the benchmarks of the spine: schedule precision, dispatch throughput,
// scaling over nodes, rebalance time and idle footprint. Each starts real testnode processes
// (internal/chaos) on the local stack and reports its figures with b.ReportMetric. They run
// only with -bench (make bench); every one is a single measurement (-benchtime=1x).
package bench_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/mq"
)

// testnode is the shared testnode binary, built once per process.
func testnode(b *testing.B) string {
	b.Helper()
	app.QuietRocketMQ()
	bin, err := chaos.BuiltTestnode()
	require.NoError(b, err)
	return bin
}

// rig is one benchmark's schema, topic and node cluster.
type rig struct {
	b    *testing.B
	pool *pgxpool.Pool
	mq   mq.Config
	c    *chaos.Cluster
	prod *mq.Producer
}

func newRig(b *testing.B, queues int, s chaos.Settings) *rig {
	b.Helper()
	testenv.Integration(b)
	bin := testnode(b)
	sch := testenv.NewSchema(b)
	ctx := context.Background()
	_, err := sch.Pool.Exec(ctx, chaos.EffectsDDL)
	require.NoError(b, err)
	require.NoError(b, ledger.Migrate(ctx, sch.Pool))
	m := testenv.NewMQ(b, queues)
	s.DSN, s.MQ = sch.DSN, m.Config
	s.MQ.QueueNums = queues
	if s.LeaseKey == 0 {
		s.LeaseKey = time.Now().UnixNano() & 0x7fffffff
	}
	r := &rig{b: b, pool: sch.Pool, mq: m.Config, c: chaos.NewCluster(b, bin, s)}
	r.prod, err = mq.NewProducer(m.Config, "bench-"+testenv.Suffix())
	require.NoError(b, err)
	b.Cleanup(func() { _ = r.prod.Close() })
	return r
}

func forced(kind, runKey string, shards int, params string) []job.Envelope {
	out := make([]job.Envelope, shards)
	for i := range out {
		out[i] = job.Envelope{Job: kind, RunKey: runKey, Trigger: job.TriggerManual, ScheduledAt: time.Now().UTC(),
			Shard: job.Shard{Index: i, Total: shards}, Params: []byte(params), RequestedBy: "bench"}
	}
	return out
}

func (r *rig) publish(envs ...job.Envelope) {
	r.b.Helper()
	for _, e := range envs {
		_, err := r.prod.Publish(context.Background(), e, time.Time{})
		require.NoError(r.b, err)
	}
}

// count returns how many rows of kind (run keys with prefix) have status.
func (r *rig) count(kind, prefix, status string) int {
	var n int
	require.NoError(r.b, r.pool.QueryRow(context.Background(), `SELECT count(*) FROM job_runs
		WHERE job = $1 AND run_key LIKE $2 || '%' AND status = $3`, kind, prefix, status).Scan(&n))
	return n
}

// serving publishes runs of shards no-op shards until one has fully run on want distinct
// nodes. A fresh group starts each queue at its last offset when the queue is first assigned,
// so a message published before that is never seen: benchmarks publish only after this.
func (r *rig) serving(want, shards int) {
	r.b.Helper()
	ctx := context.Background()
	testenv.Eventually(r.b, 2*time.Minute, func() bool {
		key := "manual:warm-" + testenv.Suffix()
		r.publish(forced(chaos.NoopKind, key, shards, `{}`)...)
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			var done, nodes int
			require.NoError(r.b, r.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT node) FROM job_runs
				WHERE run_key = $1 AND status = 'succeeded'`, key).Scan(&done, &nodes))
			if done == shards {
				return nodes == want
			}
			time.Sleep(100 * time.Millisecond)
		}
		return false
	}, "%d nodes to serve every queue", want)
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func sortDurations(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
