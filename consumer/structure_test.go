package consumer

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The consumer stays readable in one sitting and free of the broker: no file over 300 lines
// and no import of the RocketMQ client or of our mq package (the adapter lives in
// mq/consume), tests included; no function of the engine over 60 lines (a test's table may
// be longer).
func TestConsumerStaysSmallAndBrokerFree(t *testing.T) {
	t.Parallel()
	const maxFileLines, maxFuncLines = 300, 60
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		require.NoError(t, err)
		lines := fset.File(f.Pos()).LineCount()
		require.LessOrEqual(t, lines, maxFileLines, "%s has %d lines", name, lines)
		for _, imp := range f.Imports {
			path, err := strconv.Unquote(imp.Path.Value)
			require.NoError(t, err)
			require.False(t, strings.Contains(path, "rocketmq") || path == "github.com/chatplat/job-service/mq" ||
				strings.HasPrefix(path, "github.com/chatplat/job-service/mq/"), "%s imports %s", name, path)
		}
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			n := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
			require.LessOrEqual(t, n, maxFuncLines, "%s: %s has %d lines", name, fn.Name.Name, n)
		}
	}
}
