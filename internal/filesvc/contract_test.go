package filesvc_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/filereap"
	"github.com/chatplat/job-service/internal/filesvc"
)

// TestContractSQLIsTheREADMEs keeps the file GC contract (docs/contracts.md, which the README
// links to) and the statements the tests' file service runs the same text, and the object lock
// the GC's.
func TestContractSQLIsTheREADMEs(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "..", "docs", "contracts.md"))
	require.NoError(t, err)
	// The contract indents its code blocks inside list items; compare line by line.
	var lines []string
	for _, l := range strings.Split(string(readme), "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	text := strings.Join(lines, "\n")
	for name, sql := range map[string]string{"Begin": filesvc.Begin, "LockObject": filesvc.LockObject, "DedupInsert": filesvc.DedupInsert,
		"Repoint": filesvc.Repoint, "UploadInsert": filesvc.UploadInsert, "Reference": filesvc.Reference} {
		var want []string
		for _, l := range strings.Split(sql, "\n") {
			want = append(want, strings.TrimSpace(l))
		}
		require.Contains(t, text, strings.Join(want, "\n"), "docs/contracts.md lacks filesvc.%s", name)
	}
	require.Equal(t, "SELECT "+fmt.Sprintf(filereap.ObjectLockSQL, "$1", "$2"), filesvc.LockObject)
}
