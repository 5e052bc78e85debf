package archive

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestConfigDefaultsKeepChatHistory: unconfigured, the job archives the audit log only; chat
// tables move only once the operator names how many months they stay hot, and a new
// deployment's first run only previews.
func TestConfigDefaultsKeepChatHistory(t *testing.T) {
	t.Parallel()
	c := Config{}.WithDefaults()
	require.NoError(t, c.Validate())
	require.Equal(t, []TableConfig{{"audit_logs", 3}}, c.Tables)
	require.True(t, *c.FirstRunDryRun)
	require.True(t, *c.Drop, "dropping still needs a verified copy")

	for _, tbl := range []string{"chat_messages", "chat_inbox"} {
		err := Config{Tables: []TableConfig{{Table: tbl}}}.WithDefaults().Validate()
		require.ErrorContains(t, err, "tables[0].hot_months")
		require.ErrorContains(t, err, tbl)
	}
	require.NoError(t, Config{Tables: []TableConfig{{"chat_messages", 24}}}.WithDefaults().Validate())
	off := false
	require.False(t, *Config{FirstRunDryRun: &off}.WithDefaults().FirstRunDryRun)
}
