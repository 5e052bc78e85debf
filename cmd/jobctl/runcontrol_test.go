package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// jobctl logs, logs --follow, cancel and retry against the real ledger and broker (the node's
// side, which stops the run, is tested in internal/app and admin).
func TestLogsCancelRetry(t *testing.T) {
	s := testenv.NewSchema(t)
	m := testenv.NewMQ(t, 2)
	ctx := context.Background()
	require.NoError(t, ledger.Migrate(ctx, s.Pool))
	l := ledger.New(s.Pool)
	cfgPath := writeConfig(t, fmt.Sprintf(`
postgres: {dsn: %q}
rocketmq: {name_servers: [%q], topic: %s, consumer_group: %s, producer_group: %s}
ticker: {enabled: false}
`, s.DSN, m.Config.NameServers[0], m.Config.Topic, m.Config.ConsumerGroup, m.Config.ProducerGroup))
	claim := func(key string) ledger.Claim {
		c, err := l.ClaimRun(ctx, job.Envelope{Job: "pg_partition", RunKey: key, Trigger: job.TriggerManual,
			ScheduledAt: time.Now(), Shard: job.Shard{Total: 1}}, "node-a", "m-"+key, time.Minute)
		require.NoError(t, err)
		return c
	}
	logLine := func(seq int, msg string) ledger.LogLine {
		return ledger.LogLine{Seq: seq, At: time.Now(), Level: "INFO", Msg: msg, Attrs: "table=chat_messages"}
	}

	c := claim("manual:logs-" + testenv.Suffix())
	id := strconv.FormatInt(c.RunID, 10)
	_, err := l.SyncRuns(ctx, nil, []ledger.LogBatch{{RunID: c.RunID, Attempt: 1, FirstSeq: 3,
		Lines: []ledger.LogLine{logLine(3, "created partition")}}})
	require.NoError(t, err)
	out, err := jobctl(t, cfgPath, "logs", id)
	require.NoError(t, err, out)
	require.Contains(t, out, "attempt 1: first 2 lines dropped")
	require.Contains(t, out, "INFO  #1 created partition table=chat_messages")

	// --follow prints what comes while the run runs, and stops when it ends.
	go func() {
		time.Sleep(1500 * time.Millisecond)
		_, _ = l.SyncRuns(ctx, nil, []ledger.LogBatch{{RunID: c.RunID, Attempt: 1, FirstSeq: 3,
			Lines: []ledger.LogLine{logLine(4, "later line")}}})
		_ = l.Finish(ctx, c, ledger.Outcome{Status: ledger.StatusSucceeded})
	}()
	out, err = jobctl(t, cfgPath, "logs", id, "--follow", "--interval", "200ms")
	require.NoError(t, err, out)
	require.Contains(t, out, "later line")
	require.Contains(t, out, "run "+id+" succeeded")

	running := claim("manual:cancel-" + testenv.Suffix())
	out, err = jobctl(t, cfgPath, "cancel", strconv.FormatInt(running.RunID, 10))
	require.NoError(t, err, out)
	require.Contains(t, out, "stops it at its next heartbeat")
	out, err = jobctl(t, cfgPath, "cancel", id)
	require.ErrorIs(t, err, ledger.ErrNotCancellable, out)

	failed := claim("manual:retry-" + testenv.Suffix())
	require.NoError(t, l.Finish(ctx, failed, ledger.Outcome{Status: ledger.StatusFailed, Err: errors.New("boom")}))
	out, err = jobctl(t, cfgPath, "retry", strconv.FormatInt(failed.RunID, 10))
	require.NoError(t, err, out)
	require.Regexp(t, `run \d+ retried as run \d+ \(pg_partition retry:\d+@\d+\)`, out)
	ctl, err := l.Control(ctx, failed.RunID)
	require.NoError(t, err)
	require.Len(t, ctl.RetriedAs, 1)
	retry, err := l.GetRun(ctx, ctl.RetriedAs[0])
	require.NoError(t, err)
	require.NotEmpty(t, retry.MsgID, "published to the broker")
	require.Equal(t, requester(), retry.RequestedBy)
	_, err = jobctl(t, cfgPath, "retry", id)
	require.ErrorIs(t, err, ledger.ErrNotRetryable)

	// show says who asked to cancel or retry, and when, on both sides of a retry.
	out, err = jobctl(t, cfgPath, "show", strconv.FormatInt(running.RunID, 10))
	require.NoError(t, err, out)
	require.Regexp(t, `cancel: requested by \S+ at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d`, out)
	out, err = jobctl(t, cfgPath, "show", strconv.FormatInt(failed.RunID, 10))
	require.NoError(t, err, out)
	require.Regexp(t, fmt.Sprintf(`retried as: run %d \(\w+\), requested by %s at \d{4}-`, retry.ID, regexp.QuoteMeta(requester())), out)
	out, err = jobctl(t, cfgPath, "show", strconv.FormatInt(retry.ID, 10))
	require.NoError(t, err, out)
	require.Regexp(t, fmt.Sprintf(`retry of: run %d, requested by %s at \d{4}-`, failed.RunID, regexp.QuoteMeta(requester())), out)
	out, err = jobctl(t, cfgPath, "--json", "show", strconv.FormatInt(failed.RunID, 10))
	require.NoError(t, err, out)
	var shown struct {
		Control ledger.RunControl `json:"control"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &shown))
	require.Len(t, shown.Control.Retries, 1)
	require.Equal(t, requester(), shown.Control.Retries[0].RequestedBy)
}
