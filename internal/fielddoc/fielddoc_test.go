package fielddoc

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOneLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ doc, field, want string }{
		{"Addr is host:port of a standalone Redis.\nMore text.", "Addr", "Host:port of a standalone Redis"},
		{"SendTimeout bounds one publish.", "SendTimeout", "Bounds one publish"},
		{"StaleAfter: running runs are abandoned. Second sentence.", "StaleAfter", "Running runs are abandoned"},
		{"AccessKey and SecretKey sign requests (JOBSERVICE_S3_ACCESS_KEY, JOBSERVICE_S3_SECRET_KEY).", "SecretKey", "AccessKey and SecretKey sign requests"},
		{"Window, e.g. 1h. Then more.", "Window", "Window, e.g. 1h"},
		{"", "X", ""},
	} {
		require.Equal(t, tc.want, OneLine(tc.doc, tc.field), tc.doc)
	}
}
