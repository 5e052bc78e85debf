package app

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// TestRunLogSaysWhatHappened: a successful pg_partition run, forced through the broker on a
// real node, has a run log (what `jobctl logs ID` prints) that says who ran it with which
// parameters, what the handler did, and how it ended, in how long, with what result.
func TestRunLogSaysWhatHappened(t *testing.T) {
	c := newCluster(t, "  pg_partition: {max_attempts: 2}")
	c.schema.ApplyChatSchema(t)
	n := c.startWith("a", func(cfg *config.Config) {
		job.SectionOf[handlers.PartitionConfig](cfg.Sections, handlers.PartitionKind).Tables = []string{"chat_messages"}
	})
	env := manual(handlers.PartitionKind, "manual:log-"+testenv.Suffix(), 1, `{"premake":1}`)
	c.publish(c.producer(), env...)
	run := c.finishedRun(n.Ledger, handlers.PartitionKind, env[0].RunKey)
	require.Equal(t, ledger.StatusSucceeded, run.Status, run.Error)

	page, err := n.Ledger.RunLogs(context.Background(), run.ID, 0, 100)
	require.NoError(t, err)
	var text []string
	for _, ln := range page.Lines {
		text = append(text, ln.Level+" "+ln.Msg+" "+ln.Attrs)
	}
	all := strings.Join(text, "\n")
	require.GreaterOrEqual(t, len(page.Lines), 4, all)
	first, last := page.Lines[0], page.Lines[len(page.Lines)-1]
	require.Equal(t, "run started", first.Msg, all)
	for _, want := range []string{"node=a", "attempt=1", "shard=0/1", "trigger=manual", `params="{\"premake\":1}"`} {
		require.Contains(t, first.Attrs, want, all)
	}
	// The handler's own steps, at Info.
	steps := map[string]string{}
	for _, ln := range page.Lines {
		if ln.Level == "INFO" {
			steps[ln.Msg] += ln.Attrs + "\n"
		}
	}
	require.Contains(t, steps["checking partitions"], "table=chat_messages", all)
	require.Contains(t, steps["created partition"], "partition=chat_messages_", all)
	require.Contains(t, steps["partitions ready"], "created=2 present=0", all)
	require.Equal(t, "run finished", last.Msg, all)
	require.Equal(t, "INFO", last.Level)
	for _, want := range []string{"status=succeeded", "duration_ms=", `result="{\"tables\":[{\"table\":\"chat_messages\",\"created\":[`} {
		require.Contains(t, last.Attrs, want, all)
	}
}
