package chaos

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The previous release is found by git: the commit before the one that added the work tree's
// newest migration, which that commit's tree lacks. A shallow clone has not the history to
// say, and the lookup fails with a message saying so (the roll test fails, it never skips).
func TestPreviousReleaseComesFromHistoryAndNeedsIt(t *testing.T) {
	repo := RepoRoot()
	t.Setenv(RollFromEnv, "")
	prev, err := PreviousRelease(repo)
	require.NoError(t, err)
	newest, err := newestMigration(repo)
	require.NoError(t, err)
	_, err = git(repo, "cat-file", "-e", prev+":"+migrationsDir+"/"+newest)
	require.Error(t, err, "the previous release %s must not have %s yet", prev, newest)

	shallow := filepath.Join(t.TempDir(), "shallow")
	out, err := exec.Command("git", "clone", "--quiet", "--depth", "1", "file://"+repo, shallow).CombinedOutput()
	require.NoError(t, err, "%s", out)
	_, err = PreviousRelease(shallow)
	require.ErrorContains(t, err, "shallow clone")

	require.Equal(t, "a: {x: 1}\n", withoutKey("a: {x: 1, schedule_topic: t}\n", "schedule_topic"))
	require.Equal(t, "a: {x: 1}\n", withoutKey("a: {schedule_topic: t, x: 1}\n", "schedule_topic"))
	require.Equal(t, "jobs:\n  b: {}\n", withoutKey("jobs:\n  gone: {enabled: false}\n  b: {}\n", "gone"))
}
