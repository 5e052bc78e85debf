package chaos_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/filegc"
	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/internal/testenv"
)

// On SIGTERM the job consumer stops taking messages before the file GC
// consumer stops. The node's log is the observable: one process writes both lines, the job
// consumer's once its pause took effect and the file GC's before it stops pulling, so their
// order is the order of the two stops (no timing window to win). Behind it: a job message
// published after the pause is never claimed by the draining node (another node runs it),
// while the file GC, working up to its stop, had collected the files whose events it got.
func TestSIGTERMPausesJobsBeforeFileGCStops(t *testing.T) {
	t.Parallel()
	sfx := testenv.Suffix()
	gcTopic, gcGroup := "TGC_"+sfx, "ggc_"+sfx
	w := newWorld(t, "", nil, chaos.Settings{Drain: 10 * time.Second, MaxRunning: 1,
		Jobs: `chaos_probe: {max_attempts: 3, timeout: 1m, overlap: allow}`,
		Extra: fmt.Sprintf(`s3: {endpoint: %q, access_key: %q, secret_key: %q, use_ssl: false, region: us-east-1, path_style: true}
filegc: {enabled: true, topic: %s, group: %s, grace: 1s, batch_size: 8}
`, testenv.S3Endpoint(), testenv.S3AccessKey(), testenv.S3SecretKey(), gcTopic, gcGroup)})
	applyChatSchema(t, w.pool)
	g := &gcTable{pool: w.pool, b: testenv.NewBucket(t)}
	g.seed(t)
	a := w.c.Start("a", nil)
	w.ready(1)
	require.NoError(t, a.WaitLog("file GC consumer started", 10*time.Second))

	// The file GC works on a: it collects the files whose ref_count=0 events it gets.
	at := time.Now().Add(-time.Minute).UTC()
	for id := int64(1); id <= gcCollectable; id++ {
		body, err := filegc.Encode(filegc.Event{FileID: id, FileHash: fmt.Sprintf("h%d", id), Bucket: g.b.Name,
			ObjectPath: gcKey(id), EventTime: at}, time.Now())
		require.NoError(t, err)
		_, err = w.producer().PublishRaw(context.Background(), gcTopic, filegc.DefaultTag, []string{fmt.Sprint(id)}, body, time.Time{})
		require.NoError(t, err)
	}
	testenv.Eventually(t, 90*time.Second, func() bool {
		var n int
		return w.pool.QueryRow(context.Background(), `SELECT count(DISTINCT file_id) FROM gc_log`).Scan(&n) == nil && n == gcCollectable
	}, "a's file GC to collect the files")
	g.collected(t)

	// A long run keeps the drain going while the test looks.
	long := "manual:long-" + sfx
	w.publish(forced(chaos.ProbeKind, long, 1, `{"sleep_ms":4000}`)...)
	testenv.Eventually(t, 60*time.Second, func() bool {
		rs := w.rows(chaos.ProbeKind, long)
		return len(rs) == 1 && rs[0].Status == "running"
	}, "the long run to start")

	require.NoError(t, a.Signal(syscall.SIGTERM))
	require.NoError(t, a.WaitLog("job consumer paused", 10*time.Second))
	late := "manual:late-" + sfx
	w.publish(forced(chaos.ProbeKind, late, 1, `{}`)...)
	require.NoError(t, a.WaitLog("file GC consumer stopping", 30*time.Second))
	code, err := a.Wait(40 * time.Second)
	require.NoError(t, err)
	require.Zero(t, code)

	log := a.Log()
	paused, gcStop := strings.Index(log, "job consumer paused"), strings.Index(log, "file GC consumer stopping")
	require.Less(t, paused, gcStop, "the job consumer paused before the file GC stopped")
	require.Equal(t, 1, strings.Count(log, "job consumer paused"))
	exactlyOnce(t, w.rows(chaos.ProbeKind, long))
	require.Empty(t, w.rows(chaos.ProbeKind, late), "a claimed nothing after its job consumer paused")

	// The message a left alone is not lost: the next node runs it.
	w.c.Start("b", nil)
	exactlyOnce(t, w.waitDone(chaos.ProbeKind, late, 1, 2*time.Minute))
	t.Logf("log order on SIGTERM: job consumer paused (byte %d) before file GC stopping (byte %d); the job published after the pause ran on b",
		paused, gcStop)
}
