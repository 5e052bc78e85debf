package chaos_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	rmqconsumer "github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/mq"
)

// bin is the testnode binary, built once for the package by TestMain.
var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	app.QuietRocketMQ() // the tap consumer's client would log at info every few seconds
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "jobsvc-chaos-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin, err = chaos.Build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// world is one test's servers and the view of them the test checks through.
type world struct {
	t    *testing.T
	pool *pgxpool.Pool
	l    *ledger.Ledger
	mq   mq.Config
	c    *chaos.Cluster
	prod *mq.Producer
}

// newWorld gives a test a fresh schema (or the private Postgres at dsn) with the effects
// table, a fresh topic and group (or mqc), and a cluster of testnode processes on them.
func newWorld(t *testing.T, dsn string, mqc *mq.Config, s chaos.Settings) *world {
	t.Helper()
	testenv.Integration(t)
	ctx := context.Background()
	w := &world{t: t}
	if dsn == "" {
		sch := testenv.NewSchema(t)
		dsn, w.pool = sch.DSN, sch.Pool
	} else {
		var err error
		w.pool, err = pgxpool.New(ctx, dsn)
		require.NoError(t, err)
		t.Cleanup(w.pool.Close)
	}
	_, err := w.pool.Exec(ctx, chaos.EffectsDDL)
	require.NoError(t, err)
	require.NoError(t, ledger.Migrate(ctx, w.pool))
	w.l = ledger.New(w.pool)
	if mqc == nil {
		m := testenv.NewMQ(t, 8)
		mqc = &m.Config
	}
	w.mq = *mqc
	s.DSN, s.MQ = dsn, w.mq
	if s.LeaseKey == 0 {
		s.LeaseKey = time.Now().UnixNano() & 0x7fffffff
	}
	w.c = chaos.NewCluster(t, bin, s)
	return w
}

// producer is the test's own publisher, like jobctl run.
func (w *world) producer() *mq.Producer {
	if w.prod == nil {
		p, err := mq.NewProducer(w.mq, "chaos-test-"+testenv.Suffix())
		require.NoError(w.t, err)
		w.t.Cleanup(func() { _ = p.Close() })
		w.prod = p
	}
	return w.prod
}

// tap is a second consumer group on the job topic that counts every stored message per run
// key: it sees what was published, whatever the nodes did with it.
type tap struct {
	mu   sync.Mutex
	seen map[string]map[string]bool // run key -> message ids
	born map[string]tapMsg          // message id -> where and when the producer sent it
	pc   rocketmq.PushConsumer
}

// tapMsg is where a stored message came from: each node's producer has its own connection,
// so the born host (ip:port) tells nodes apart.
type tapMsg struct {
	runKey   string
	bornHost string
	born     time.Time
}

func (w *world) tap() *tap {
	w.t.Helper()
	tp := &tap{seen: map[string]map[string]bool{}, born: map[string]tapMsg{}}
	pc, err := rocketmq.NewPushConsumer(
		rmqconsumer.WithNameServer(w.mq.NameServers),
		rmqconsumer.WithGroupName("tap_"+testenv.Suffix()),
		rmqconsumer.WithInstance("tap-"+testenv.Suffix()),
		rmqconsumer.WithConsumerModel(rmqconsumer.Clustering),
		rmqconsumer.WithConsumeFromWhere(rmqconsumer.ConsumeFromFirstOffset))
	require.NoError(w.t, err)
	see := func(_ context.Context, msgs ...*primitive.MessageExt) (rmqconsumer.ConsumeResult, error) {
		tp.mu.Lock()
		defer tp.mu.Unlock()
		for _, m := range msgs {
			k := m.GetKeys()
			if tp.seen[k] == nil {
				tp.seen[k] = map[string]bool{}
			}
			// One publish is one client message id (UNIQ_KEY): the broker's timer wheel may
			// put a timer message into the topic twice, under two offset ids.
			id := m.MsgId
			if id == "" {
				id = m.OffsetMsgId
			}
			tp.seen[k][id] = true
			tp.born[id] = tapMsg{runKey: k, bornHost: m.BornHost, born: time.UnixMilli(m.BornTimestamp)}
		}
		return rmqconsumer.ConsumeSuccess, nil
	}
	// The ticker publishes to the schedule topic; the job topic is watched too (republishes
	// of manual runs, and anything published there by hand).
	for _, topic := range []string{w.mq.Topic, w.mq.WithDefaults().ScheduleTopic} {
		require.NoError(w.t, pc.Subscribe(topic, rmqconsumer.MessageSelector{}, see))
	}
	require.NoError(w.t, pc.Start())
	w.t.Cleanup(func() { _ = pc.Shutdown() })
	tp.pc = pc
	return tp
}

// count is how many distinct stored messages carried runKey.
func (tp *tap) count(runKey string) int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return len(tp.seen[runKey])
}

func forced(kind, runKey string, shards int, params string) []job.Envelope {
	out := make([]job.Envelope, shards)
	for i := range out {
		out[i] = job.Envelope{Job: kind, RunKey: runKey, Trigger: job.TriggerManual, ScheduledAt: time.Now().UTC(),
			Shard: job.Shard{Index: i, Total: shards}, Params: []byte(params), RequestedBy: "chaos"}
	}
	return out
}

func (w *world) publish(envs ...job.Envelope) {
	w.t.Helper()
	for _, e := range envs {
		_, err := w.producer().Publish(context.Background(), e, time.Time{})
		require.NoError(w.t, err)
	}
}

// row is a job_runs row with its side-effect count.
type row struct {
	ID       int64
	Job      string
	RunKey   string
	Shard    int
	Status   string
	Attempt  int
	Node     string
	Effects  int
	Attempts []attempt
}

type attempt struct {
	Attempt int
	Node    string
	Outcome string
}

// rows reads the runs of kind (all of them when runKey is empty), with effects and attempts.
func (w *world) rows(kind, runKey string) []row {
	w.t.Helper()
	ctx := context.Background()
	rs, err := w.pool.Query(ctx, `
		SELECT r.id, r.job, r.run_key, r.shard_index, r.status, r.attempt, r.node, coalesce(e.count, 0)
		FROM job_runs r LEFT JOIN chaos_effects e ON e.job = r.job AND e.run_key = r.run_key AND e.shard = r.shard_index
		WHERE r.job = $1 AND ($2 = '' OR r.run_key = $2) ORDER BY r.scheduled_at, r.run_key, r.shard_index`, kind, runKey)
	require.NoError(w.t, err)
	out, err := pgx.CollectRows(rs, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.ID, &x.Job, &x.RunKey, &x.Shard, &x.Status, &x.Attempt, &x.Node, &x.Effects)
		return x, err
	})
	require.NoError(w.t, err)
	for i := range out {
		as, err := w.pool.Query(ctx, `SELECT attempt, node, outcome FROM job_attempts WHERE run_id = $1 ORDER BY attempt`, out[i].ID)
		require.NoError(w.t, err)
		out[i].Attempts, err = pgx.CollectRows(as, pgx.RowToStructByPos[attempt])
		require.NoError(w.t, err)
	}
	return out
}

// ready publishes 8-shard no-op runs until one has fully run on n distinct nodes. A fresh
// group starts each queue at its last offset once the queue is first assigned, so a message
// published before that moment is never seen by the group: tests publish only after this.
func (w *world) ready(n int) time.Time {
	w.t.Helper()
	ctx := context.Background()
	testenv.Eventually(w.t, 2*time.Minute, func() bool {
		key := "manual:ready-" + testenv.Suffix()
		w.publish(forced(chaos.NoopKind, key, 8, `{}`)...)
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			var done, nodes int
			require.NoError(w.t, w.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT node) FROM job_runs
				WHERE job = $1 AND run_key = $2 AND status = 'succeeded'`, chaos.NoopKind, key).Scan(&done, &nodes))
			if done == 8 {
				return nodes == n
			}
			time.Sleep(100 * time.Millisecond)
		}
		return false
	}, "%d nodes to serve every queue", n)
	return time.Now()
}

// waitDone waits until the run has shards rows, all terminal.
func (w *world) waitDone(kind, runKey string, shards int, timeout time.Duration) []row {
	w.t.Helper()
	var rs []row
	testenv.Eventually(w.t, timeout, func() bool {
		rs = w.rows(kind, runKey)
		if len(rs) < shards {
			return false
		}
		for _, r := range rs {
			if !ledger.Status(r.Status).Terminal() {
				return false
			}
		}
		return true
	}, "run %s/%s to finish: %+v", kind, runKey, &rs)
	return rs
}

// noneRunning checks that no run due by before is left running anywhere in the ledger (a
// schedule still firing may have a later one in flight).
func (w *world) noneRunning(before time.Time) {
	w.t.Helper()
	var n int
	require.NoError(w.t, w.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM job_runs WHERE status = 'running' AND scheduled_at <= $1`, before).Scan(&n))
	require.Zero(w.t, n, "runs left running")
	require.NoError(w.t, w.pool.QueryRow(context.Background(), `SELECT count(*) FROM job_attempts a
		JOIN job_runs r ON r.id = a.run_id WHERE a.outcome = 'running' AND r.scheduled_at <= $1`, before).Scan(&n))
	require.Zero(w.t, n, "attempts left running")
}

// exactlyOnce checks that every row succeeded, with exactly one succeeded attempt and one
// side effect.
func exactlyOnce(t *testing.T, rs []row) {
	t.Helper()
	for _, r := range rs {
		require.Equal(t, "succeeded", r.Status, "%+v", r)
		require.Equal(t, 1, r.Effects, "side effect count of %+v", r)
		succeeded := 0
		for _, a := range r.Attempts {
			if a.Outcome == "succeeded" {
				succeeded++
			}
		}
		require.Equal(t, 1, succeeded, "succeeded attempts of %+v", r)
	}
}

func (r row) String() string {
	return fmt.Sprintf("%s/%s#%d %s attempt=%d node=%s effects=%d attempts=%v", r.Job, r.RunKey, r.Shard, r.Status,
		r.Attempt, r.Node, r.Effects, r.Attempts)
}
