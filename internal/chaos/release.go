package chaos

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// migrationsDir is where the ledger's migrations live in the repository.
const migrationsDir = "ledger/migrations"

// RollFromEnv names a commit to roll from instead of the previous release (to check a roll
// from an older release, e.g. the one before a given migration).
const RollFromEnv = "JOBSVC_ROLL_FROM"

// PreviousRelease returns the commit of the release a node of this tree rolls from: on the
// first-parent line of HEAD, the last commit before the newest migration file of the work tree
// was added (HEAD itself when that file is not committed yet). On main, where branches land as
// merges, that is the main commit before the merge that brought the newest migration. It needs
// the history: in a shallow clone it says so instead of guessing.
func PreviousRelease(repo string) (string, error) {
	if c := os.Getenv(RollFromEnv); c != "" {
		return revParse(repo, c+"^{commit}")
	}
	shallow, err := git(repo, "rev-parse", "--is-shallow-repository")
	if err != nil {
		return "", fmt.Errorf("the rolling-upgrade test builds the previous release from git history: %w", err)
	}
	if shallow == "true" {
		return "", errors.New("the repository is a shallow clone: the rolling-upgrade test builds the previous " +
			"release from git history; run `git fetch --unshallow` (CI: clone with full history, e.g. fetch-depth: 0)")
	}
	newest, err := newestMigration(repo)
	if err != nil {
		return "", err
	}
	added, err := git(repo, "log", "--first-parent", "--diff-filter=A", "--format=%H", "-1", "--",
		migrationsDir+"/"+newest)
	if err != nil {
		return "", fmt.Errorf("find the commit that added %s: %w", newest, err)
	}
	if added == "" {
		return revParse(repo, "HEAD") // the newest migration is not committed yet
	}
	prev, err := revParse(repo, added+"^1")
	if err != nil {
		return "", fmt.Errorf("the commit before %s (which added %s): %w", added, newest, err)
	}
	return prev, nil
}

// newestMigration is the file name of the work tree's newest migration.
func newestMigration(repo string) (string, error) {
	entries, err := os.ReadDir(filepath.Join(repo, migrationsDir))
	if err != nil {
		return "", fmt.Errorf("list migrations: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("no migrations in %s", migrationsDir)
	}
	slices.Sort(names) // zero-padded numbers: name order is version order
	return names[len(names)-1], nil
}

func revParse(repo, rev string) (string, error) {
	c, err := git(repo, "rev-parse", "--verify", "--quiet", rev)
	if err != nil || c == "" {
		return "", fmt.Errorf("no commit %s in this repository (a shallow or partial clone?): %v", rev, err)
	}
	return c, nil
}

func git(repo string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// BuildRelease builds testnode as it was at commit and returns the binary's path. Binaries are
// kept by commit in the user's cache directory (JOBSVC_RELEASE_CACHE overrides it), so a
// release is built once per machine; the source comes from git archive, leaving the work tree
// and the repository's worktree list alone.
func BuildRelease(repo, commit string) (string, error) {
	cache := os.Getenv("JOBSVC_RELEASE_CACHE")
	if cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("release cache: %w", err)
		}
		cache = filepath.Join(dir, "job-service", "releases")
	}
	bin := filepath.Join(cache, commit, "testnode")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", fmt.Errorf("release cache: %w", err)
	}
	src, err := os.MkdirTemp("", "jobsvc-release-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(src)
	if err := extract(repo, commit, src); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(src, "internal", "chaos", "testnode")); err != nil {
		return "", fmt.Errorf("release %s has no internal/chaos/testnode to build: %w", commit, err)
	}
	tmp := bin + ".building." + filepath.Base(src)
	cmd := exec.Command("go", "build", "-o", tmp, "./internal/chaos/testnode")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build testnode of release %s: %w\n%s", commit, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil { // atomic: a parallel build of the same commit is harmless
		return "", fmt.Errorf("release cache: %w", err)
	}
	return bin, nil
}

// extract writes the tree of commit into dir (git archive piped into tar).
func extract(repo, commit, dir string) error {
	archive := exec.Command("git", "-C", repo, "archive", "--format=tar", commit)
	untar := exec.Command("tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return err
	}
	untar.Stdin = pipe
	var archErr, tarErr strings.Builder
	archive.Stderr, untar.Stderr = &archErr, &tarErr
	if err := untar.Start(); err != nil {
		return fmt.Errorf("tar: %w", err)
	}
	if err := archive.Run(); err != nil {
		_ = untar.Wait()
		return fmt.Errorf("git archive %s: %w: %s", commit, err, archErr.String())
	}
	if err := untar.Wait(); err != nil {
		return fmt.Errorf("extract release %s: %w: %s", commit, err, tarErr.String())
	}
	return nil
}

// unknownKey is how a node's strict config parser names a key its release does not have, and
// unknownJob a job (turned off in this tree's test config) that its release does not have.
var (
	unknownKey = regexp.MustCompile(`field (\w+) not found in type`)
	unknownJob = regexp.MustCompile(`jobs\.(\w+): no such job kind`)
)

// StartRelease starts node name of an earlier release's binary with the settings' config and
// waits until it logged that it started. The config is this tree's: a key the earlier release
// does not know yet (its parser refuses unknown keys) is left out, as an operator's config for
// that release would not have it.
func StartRelease(bin, dir, name string, s Settings) (*Proc, error) {
	cfg := s.YAML(name)
	for range 20 {
		_ = os.Remove(filepath.Join(dir, name+".log"))
		p, err := startConfig(bin, dir, name, cfg, s.Env)
		if err != nil {
			return nil, err
		}
		err = p.WaitLog("node started", 60*time.Second)
		if err == nil {
			return p, nil
		}
		if p.Alive() {
			p.Kill()
			return nil, err
		}
		unknown := append(unknownKey.FindAllStringSubmatch(p.Log(), -1), unknownJob.FindAllStringSubmatch(p.Log(), -1)...)
		if len(unknown) == 0 {
			return nil, err
		}
		without := cfg
		for _, m := range unknown {
			without = withoutKey(without, m[1])
		}
		if without == cfg {
			return nil, fmt.Errorf("%w (and the config has none of those keys to leave out)", err)
		}
		cfg = without
	}
	return nil, fmt.Errorf("start %s: too many config keys its release does not know", name)
}

// withoutKey drops key from the config text: an entry of a flow map ({a: 1, key: 2}) or a line.
func withoutKey(cfg, key string) string {
	q := regexp.QuoteMeta(key)
	for _, re := range []string{`,\s*\b` + q + `: [^,}\n]*`, `\b` + q + `: [^,}\n]*,\s*`, `(?m)^\s*` + q + `:.*\n`} {
		if out := regexp.MustCompile(re).ReplaceAllString(cfg, ""); out != cfg {
			return out
		}
	}
	return cfg
}
