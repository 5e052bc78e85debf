package config

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/job"
)

// The chat tables are named once, in chat_schema, for every job that reads them; a job's own
// old key still wins, with a warning naming chat_schema's.
func TestChatSchemaSharedByTheJobs(t *testing.T) {
	t.Parallel()
	env := map[string]string{"JOBSERVICE_CHAT_SCHEMA__USERS__TABLE": "members"}
	cfg, err := Parse([]byte(base+`
chat_schema:
  messages: {table: msgs, channel_id: room_id, created_at: sent_at}
  channels: {group_kind: 7}
handlers:
  msg_gap_check: {seq_column: msg_seq}
`), func(k string) string { return env[k] }, handlers.Definitions())
	require.NoError(t, err)
	gap := job.SectionOf[handlers.MsgGapConfig](cfg.Sections, handlers.MsgGapKind)
	require.Equal(t, "msgs", gap.Table)
	require.Equal(t, "room_id", gap.ChannelColumn)
	require.Equal(t, "sent_at", gap.TimeColumn)
	require.Equal(t, "msg_seq", gap.SeqColumn, "the job's own key wins")
	group := job.SectionOf[handlers.GroupActivityConfig](cfg.Sections, handlers.GroupActivityKind)
	require.Equal(t, "msgs", group.Messages.Table)
	require.Equal(t, "room_id", group.Messages.ChannelIDColumn)
	require.Equal(t, "sender_id", group.Messages.SenderIDColumn)
	require.Equal(t, 7, group.Channels.GroupKind)
	daily := job.SectionOf[handlers.DailyStatsConfig](cfg.Sections, handlers.DailyStatsKind)
	require.Equal(t, "msgs", daily.Messages.Table)
	require.Equal(t, "sent_at", daily.Messages.CreatedAtColumn)
	require.Equal(t, "members", daily.Users.Table)
	graph := job.SectionOf[handlers.GraphConsistencyConfig](cfg.Sections, handlers.GraphConsistencyKind)
	require.Equal(t, "members", graph.Table)
	require.Equal(t, "deleted_at", graph.DeletedAtColumn)
	require.Equal(t, []string{"handlers.msg_gap_check.seq_column is deprecated: set chat_schema.messages.seq, shared by the jobs"}, cfg.Warnings)

	// A bad name is reported under the job that would use it.
	_, err = Parse([]byte(base+"chat_schema: {messages: {seq: 'bad name;'}}\n"), noEnv, handlers.Definitions())
	require.ErrorContains(t, err, "handlers.msg_gap_check.seq_column")
}
