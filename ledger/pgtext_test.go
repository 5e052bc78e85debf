package ledger

import (
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestPgTextDropsWhatPostgresRefuses(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"\x00", "a\x00b", "\xff\xfe", "ok", "{\"job\":\"x\"}\x00\x80"} {
		out := pgText(in)
		require.True(t, utf8.ValidString(out), "%q", out)
		require.NotContains(t, out, "\x00")
	}
	require.Equal(t, "plain text", pgText("plain text"))
}
