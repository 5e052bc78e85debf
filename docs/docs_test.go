// Package docs holds the project's documents and the tests that keep them honest: every
// promise names a test that exists, every link between the documents leads somewhere.
package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// root is the repository root, seen from this package's folder.
const root = ".."

// testRef is a test named in promises.md: `package/path.TestName`.
var testRef = regexp.MustCompile("`([a-z][a-z0-9_/-]*)\\.((?:Test|Example|Fuzz|Benchmark)[A-Za-z0-9_]*)`")

// TestPromisedTestsExist fails when docs/promises.md names a test that is not a function of
// the package it names, and when a promise names no test at all.
func TestPromisedTestsExist(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("promises.md")
	require.NoError(t, err)
	funcs := map[string]map[string]bool{} // package dir → test functions
	rows := 0
	for _, line := range strings.Split(string(raw), "\n") {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if !strings.HasPrefix(line, "| ") || len(cells) != 3 || cells[0] == "promise" {
			continue
		}
		rows++
		refs := testRef.FindAllStringSubmatch(cells[2], -1)
		require.NotEmpty(t, refs, "promise without a test: %s", cells[0])
		for _, m := range refs {
			dir, name := m[1], m[2]
			if funcs[dir] == nil {
				funcs[dir] = testFuncs(t, filepath.Join(root, filepath.FromSlash(dir)))
			}
			require.True(t, funcs[dir][name], "promises.md names %s.%s, which is not a test of %s", dir, name, dir)
		}
	}
	require.Greater(t, rows, 20, "promises.md lists its promises in tables of three columns")
}

var funcDecl = regexp.MustCompile(`(?m)^func ((?:Test|Example|Fuzz|Benchmark)[A-Za-z0-9_]*)\(`)

func testFuncs(t *testing.T, dir string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "%s holds no tests (promises.md names a package that does not exist?)", dir)
	out := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range funcDecl.FindAllStringSubmatch(string(b), -1) {
			out[m[1]] = true
		}
	}
	return out
}

var (
	mdLink  = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
	fence   = regexp.MustCompile("(?ms)^[ \t]*```.*?^[ \t]*```")
)

// TestDocumentLinksResolve follows every relative link of the README, BENCHMARKS.md and the
// documents in docs/: the file must exist and an #anchor must be one of its headings.
func TestDocumentLinksResolve(t *testing.T) {
	t.Parallel()
	docs, err := filepath.Glob("*.md")
	require.NoError(t, err)
	sources := []string{"README.md", "BENCHMARKS.md"}
	for _, d := range docs {
		sources = append(sources, "docs/"+d)
	}
	anchors := map[string]map[string]bool{}
	anchorsOf := func(doc string) map[string]bool {
		if anchors[doc] == nil {
			b, err := os.ReadFile(filepath.Join(root, doc))
			require.NoError(t, err)
			anchors[doc] = map[string]bool{}
			for _, m := range heading.FindAllStringSubmatch(fence.ReplaceAllString(string(b), ""), -1) {
				anchors[doc][slug(m[1])] = true
			}
		}
		return anchors[doc]
	}
	for _, src := range sources {
		b, err := os.ReadFile(filepath.Join(root, src))
		require.NoError(t, err)
		for _, m := range mdLink.FindAllStringSubmatch(fence.ReplaceAllString(string(b), ""), -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			target, anchor, _ := strings.Cut(link, "#")
			doc := src
			if target != "" {
				doc = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(src), target)))
			}
			_, err := os.Stat(filepath.Join(root, doc))
			require.NoError(t, err, "%s links to %s", src, link)
			if anchor != "" {
				require.True(t, anchorsOf(doc)[anchor], "%s links to %s: no heading of %s has the anchor #%s", src, link, doc, anchor)
			}
		}
	}
}

// slug is GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes.
func slug(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestSlug(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"The file GC's contract":         "the-file-gcs-contract",
		"Run logs, cancel and retry":     "run-logs-cancel-and-retry",
		"pg_partition":                   "pg_partition",
		"A five-minute tour":             "a-five-minute-tour",
		"Indexes the platform must have": "indexes-the-platform-must-have",
	} {
		require.Equal(t, want, slug(in), in)
	}
}
