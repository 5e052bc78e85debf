package filegc_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/filegc"
	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/mq"
)

// env is a node with the event GC on, its own schema, job topic, event topic and bucket.
type env struct {
	t      testing.TB
	s      *testenv.Schema
	mq     *testenv.MQ
	b      *testenv.Bucket
	topic  string
	node   *app.Node
	prod   *mq.Producer
	ledger *ledger.Ledger
}

const grace = 2 * time.Second

func newEnv(t testing.TB, b *testenv.Bucket) *env {
	return newEnvWith(t, b, fmt.Sprintf("grace: %s, batch_size: 32", grace))
}

// newEnvWith starts the node with extra filegc settings (YAML flow-mapping entries).
func newEnvWith(t testing.TB, b *testenv.Bucket, filegcYAML string) *env {
	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	m := testenv.NewMQ(t, 8)
	if b == nil {
		b = testenv.NewBucket(t)
	}
	e := &env{t: t, s: s, mq: m, b: b, topic: testenv.NewTopic(t, m.Config, "F_")}
	raw := fmt.Sprintf(`
postgres: {dsn: %q}
rocketmq: {name_servers: [%q], topic: %s, consumer_group: %s, producer_group: %s, broker_addrs: [%q], queue_nums: 4}
ticker: {enabled: false}
s3: {endpoint: %q, access_key: %q, secret_key: %q}
filegc: {enabled: true, topic: %s, group: g%s, %s}
`, s.DSN, m.Config.NameServers[0], m.Config.Topic, m.Config.ConsumerGroup, m.Config.ProducerGroup, testenv.Broker(),
		b.Endpoint, testenv.S3AccessKey(), testenv.S3SecretKey(), e.topic, e.topic, filegcYAML)
	cfg, err := app.ParseConfig([]byte(raw), nil)
	require.NoError(t, err)
	e.node = &app.Node{Cfg: cfg, Log: testenv.Logger(t), Instance: "gc-" + testenv.Suffix()}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, e.node.Start(ctx))
	t.Cleanup(func() { _ = e.node.Stop(context.Background()) })
	e.ledger = e.node.Ledger
	e.prod, err = mq.NewProducer(m.Config, "gctest-"+testenv.Suffix())
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.prod.Close() })
	return e
}

// file inserts a deleted, unreferenced file row (updated a second ago) and its object.
func (e *env) file(id int64) string {
	key := fmt.Sprintf("obj/%d", id)
	e.b.Put(e.t, key, int(id))
	_, err := e.s.Pool.Exec(context.Background(), `INSERT INTO file_metadata (id, file_hash, bucket, object_path,
		size_bytes, ref_count, status, updated_at) VALUES ($1, $2, $3, $4, $1, 0, 2, now() - interval '1 second')`,
		id, fmt.Sprintf("h%d", id), e.b.Name, key)
	require.NoError(e.t, err)
	return key
}

func (e *env) event(id int64, at time.Time) filegc.Event {
	return filegc.Event{FileID: id, FileHash: fmt.Sprintf("h%d", id), Bucket: e.b.Name,
		ObjectPath: fmt.Sprintf("obj/%d", id), RefCount: 0, EventTime: at}
}

func (e *env) publish(evs ...filegc.Event) {
	for _, ev := range evs {
		body, err := filegc.Encode(ev, time.Now())
		require.NoError(e.t, err)
		e.publishRaw(body)
	}
}

func (e *env) publishRaw(body []byte) {
	_, err := e.prod.PublishRaw(context.Background(), e.topic, filegc.DefaultTag, nil, body, time.Time{})
	require.NoError(e.t, err)
}

func (e *env) rowExists(id int64) bool {
	var n int
	require.NoError(e.t, e.s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM file_metadata WHERE id = $1`, id).Scan(&n))
	return n == 1
}

func (e *env) gcLog(id int64) []ledger.GCEntry {
	out, err := e.ledger.GCLog(context.Background(), ledger.GCLogFilter{FileID: id})
	require.NoError(e.t, err)
	return out
}

// skippedAs reports whether a batch record says file id was skipped for reason.
func (e *env) skippedAs(id int64, reason string) bool {
	var n int
	require.NoError(e.t, e.s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM job_runs
		WHERE job = $1 AND result->'skip_samples' @> jsonb_build_array(jsonb_build_object('file_id', $2::bigint, 'reason', $3::text))`,
		filegc.JobName, id, reason).Scan(&n))
	return n > 0
}

func TestEventsDeleteAfterGraceAndNotBefore(t *testing.T) {
	e := newEnv(t, nil)
	keys := map[int64]string{}
	for id := int64(1); id <= 5; id++ {
		keys[id] = e.file(id)
	}
	at := time.Now().UTC()
	for id := int64(1); id <= 5; id++ {
		e.publish(e.event(id, at))
	}
	// Until the grace period ends, nothing is touched.
	for time.Since(at) < grace-300*time.Millisecond {
		for id, key := range keys {
			require.True(t, e.b.Exists(t, key), "object of file %d deleted %s after its event, before the grace period", id, time.Since(at))
			require.True(t, e.rowExists(id))
		}
		time.Sleep(50 * time.Millisecond)
	}
	testenv.Eventually(t, 30*time.Second, func() bool { return e.b.Count(t) == 0 }, "objects deleted after the grace period")
	var gone time.Time
	testenv.Eventually(t, 10*time.Second, func() bool {
		for id := range keys {
			if e.rowExists(id) {
				return false
			}
		}
		gone = time.Now()
		return true
	}, "rows deleted")
	t.Logf("deleted %s after the events (grace %s)", gone.Sub(at), grace)
	for id, key := range keys {
		log := e.gcLog(id)
		require.Len(t, log, 1, "gc_log of file %d", id)
		require.Equal(t, key, log[0].ObjectPath)
		require.Equal(t, id, log[0].Bytes)
		require.Equal(t, filegc.JobName, log[0].Job)
		require.False(t, log[0].DeletedAt.Before(at.Add(grace)), "deleted before the grace period")
	}
	runs, err := e.ledger.ListRuns(context.Background(), ledger.RunFilter{Job: filegc.JobName})
	require.NoError(t, err)
	require.NotEmpty(t, runs)
	for _, r := range runs {
		require.Equal(t, ledger.StatusSucceeded, r.Status)
		require.Equal(t, "event", r.Trigger)
	}
}

func TestEventReReferencedDuringGraceSurvives(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	kept := e.file(1)
	touched := e.file(2)
	other := e.file(3)
	at := time.Now().UTC()
	e.publish(e.event(1, at), e.event(2, at), e.event(3, at))
	// During the grace period a user uploads file 1's content again, and file 2 is touched.
	_, err := e.s.Pool.Exec(ctx, `UPDATE file_metadata SET ref_count = 1, status = 1, updated_at = now() WHERE id = 1`)
	require.NoError(t, err)
	_, err = e.s.Pool.Exec(ctx, `UPDATE file_metadata SET updated_at = now() + interval '1 second' WHERE id = 2`)
	require.NoError(t, err)
	testenv.Eventually(t, 30*time.Second, func() bool { return !e.rowExists(3) }, "file 3 collected")
	testenv.Eventually(t, 10*time.Second, func() bool { return e.skippedAs(1, "referenced") && e.skippedAs(2, "changed") },
		"batch records say why files 1 and 2 were left")
	require.False(t, e.b.Exists(t, other))
	require.True(t, e.b.Exists(t, kept))
	require.True(t, e.rowExists(1))
	require.True(t, e.b.Exists(t, touched))
	require.True(t, e.rowExists(2))
	require.Empty(t, e.gcLog(1))
	require.Empty(t, e.gcLog(2))
}

func TestDuplicateUnknownAndMalformedEventsAreHarmless(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	key := e.file(7)
	at := time.Now().UTC()
	ev := e.event(7, at)
	e.publish(ev, ev, ev)
	e.publish(e.event(999, at)) // no such file
	e.publishRaw([]byte(`{not json`))
	e.publishRaw([]byte(`{"file_id":8,"file_hash":"h","bucket":"` + e.b.Name + `","object_path":"obj/8","ref_count":1,"event_time":"` + at.Format(time.RFC3339) + `"}`))
	testenv.Eventually(t, 30*time.Second, func() bool { return !e.rowExists(7) }, "file 7 collected")
	testenv.Eventually(t, 10*time.Second, func() bool { return e.skippedAs(999, "unknown_file") }, "unknown file recorded")
	var rejected []ledger.Run
	testenv.Eventually(t, 10*time.Second, func() bool {
		var err error
		rejected, err = e.ledger.ListRuns(ctx, ledger.RunFilter{Job: filegc.JobName, Status: ledger.StatusRejected})
		require.NoError(t, err)
		return len(rejected) == 2
	}, "two malformed events recorded as rejected")
	require.False(t, e.b.Exists(t, key))
	require.Len(t, e.gcLog(7), 1, "deleted once, however many events")
	// Duplicates that arrive after the file is gone are recorded as such, not retried.
	e.publish(ev)
	testenv.Eventually(t, 15*time.Second, func() bool { return e.skippedAs(7, "already_deleted") }, "late duplicate recorded")
	failed, err := e.ledger.ListRuns(ctx, ledger.RunFilter{Job: filegc.JobName, Status: ledger.StatusFailed})
	require.NoError(t, err)
	require.Empty(t, failed)
}
