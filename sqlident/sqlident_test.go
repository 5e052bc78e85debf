package sqlident

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidateTable(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"chat_messages", "public.chat_inbox", "_x1"} {
		require.NoError(t, ValidateTable(ok), ok)
	}
	for _, bad := range []string{"", "chat_messages; DROP TABLE users", `"users"`, "a.b.c", "1abc", "chat messages", "x'--"} {
		require.Error(t, ValidateTable(bad), bad)
	}
}
