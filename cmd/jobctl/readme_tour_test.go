package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/testenv"
)

// tourCommands reads the jobctl commands of the README's tour: the first ```sh block after the
// "## A five-minute tour" heading, one command a line, comments dropped.
func tourCommands(t *testing.T, readme string) [][]string {
	t.Helper()
	raw, err := os.ReadFile(readme)
	require.NoError(t, err)
	var cmds [][]string
	inTour, inBlock := false, false
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			if inTour && len(cmds) > 0 {
				return cmds
			}
			inTour = line == "## A five-minute tour"
		case inTour && strings.HasPrefix(line, "```"):
			if inBlock {
				return cmds
			}
			inBlock = line == "```sh"
		case inTour && inBlock:
			if i := strings.Index(line, "#"); i >= 0 {
				line = line[:i]
			}
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			require.Equal(t, "bin/jobctl", f[0], "the tour runs jobctl only: %q", line)
			cmds = append(cmds, f[1:])
		}
	}
	require.NoError(t, sc.Err())
	return cmds
}

// tourExpect says what each of the tour's commands must print, by subcommand. A command the
// README adds without an entry here fails the test, so the tour and its check move together.
var tourExpect = map[string][]string{
	"jobs":    {"pg_partition"},
	"run":     {"pg_partition", "succeeded"},
	"runs":    {"pg_partition", "succeeded"},
	"show":    {"#1 succeeded", "result"},
	"logs":    {"created partition"},
	"backlog": {"JOB", "DUE", "lag"},
}

// TestReadmeTour runs the README's five-minute tour against the local stack, command by
// command as a reader would type them (RUN_ID becomes the id `run --wait` printed), and checks
// each exits 0 and prints what the README says it shows.
func TestReadmeTour(t *testing.T) {
	cmds := tourCommands(t, filepath.Join("..", "..", "README.md"))
	require.GreaterOrEqual(t, len(cmds), 4, "the tour forces a run, watches it, reads its log and the backlog")

	s := testenv.NewSchema(t)
	s.ApplyChatSchema(t)
	m := testenv.NewMQ(t, 4)
	raw := fmt.Sprintf(`
postgres: {dsn: %q}
rocketmq: {name_servers: [%q], topic: %s, consumer_group: %s, producer_group: %s}
ticker: {enabled: false}
handlers:
  pg_partition: {premake: 1}
`, s.DSN, m.Config.NameServers[0], m.Config.Topic, m.Config.ConsumerGroup, m.Config.ProducerGroup)
	cfgPath := filepath.Join(t.TempDir(), "tour.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(raw), 0o600))
	cfg, err := app.LoadConfig(cfgPath, nil)
	require.NoError(t, err)
	node := &app.Node{Cfg: cfg, Log: testenv.Logger(t), Instance: "tour-" + testenv.Suffix()}
	require.NoError(t, node.Start(context.Background()))
	t.Cleanup(func() { _ = node.Stop(context.Background()) })

	runID := ""
	idRe := regexp.MustCompile(`(?m)^(\d+)\s+pg_partition\s`)
	for _, args := range cmds {
		require.NotEmpty(t, args)
		want, ok := tourExpect[args[0]]
		require.True(t, ok, "the README's tour has `jobctl %s`: say in tourExpect what it must print", args[0])
		args = append([]string(nil), args...)
		for i, a := range args {
			if a == "RUN_ID" {
				require.NotEmpty(t, runID, "the tour uses RUN_ID before a run printed one")
				args[i] = runID
			}
		}
		if args[0] == "backlog" {
			// The broker's lag is read from its exporter ($JOBSVC_RMQ_METRICS); without it jobctl
			// falls back to mqadmin, which starts a JVM: slow, but the command still exits 0.
			t.Logf("backlog reads lag from %q", os.Getenv("JOBSVC_RMQ_METRICS"))
		}
		out, err := jobctl(t, cfgPath, args...)
		require.NoError(t, err, "jobctl %s:\n%s", strings.Join(args, " "), out)
		for _, w := range want {
			require.Contains(t, out, w, "jobctl %s", strings.Join(args, " "))
		}
		if args[0] == "run" {
			mm := idRe.FindStringSubmatch(out)
			require.NotNil(t, mm, "run --wait prints the run's id:\n%s", out)
			runID = mm[1]
		}
	}
}
