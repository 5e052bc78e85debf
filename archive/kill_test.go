package archive

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
)

// killHelperEnv carries the child's settings; when it is set, TestKillHelper is the archiver
// process the parent test kills.
const killHelperEnv = "ARCHIVE_KILL_HELPER"

type helperSpec struct {
	DSN    string
	Config Config
	Step   string
}

// TestKillHelper is not a test of its own: run by TestArchiveKill9AtEachStep as a separate
// process, it archives until the named step, says so on stdout and waits to be killed.
func TestKillHelper(t *testing.T) {
	raw := os.Getenv(killHelperEnv)
	if raw == "" {
		return
	}
	var spec helperSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, spec.DSN)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(pool, testenv.S3Client(t, testenv.S3Endpoint()), spec.Config, func() time.Time { return testNow }, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	a.SetHook(func(_ context.Context, step string, _ *Entry) {
		if step == spec.Step {
			fmt.Println("PAUSED " + step)
			select {} // until SIGKILL
		}
	})
	_, err = a.Run(ctx, Options{})
	fmt.Printf("FINISHED without pausing: %v\n", err)
	os.Exit(3)
}

// TestArchiveKill9AtEachStep kills (SIGKILL) a real archiver process at every step of a
// partition's move, then lets a fresh archiver resume: the partition ends dropped only after
// a verified export, in the one object the manifest named, and restores to the same rows.
func TestArchiveKill9AtEachStep(t *testing.T) {
	testenv.Integration(t)
	steps := []struct {
		step      string
		noDefault bool // DETACH CONCURRENTLY needs a parent without a DEFAULT partition
	}{
		{StepExporting, false},
		{StepExported, false},
		{StepVerified, false},
		{StepDetached, false},
		{StepDetachedUnrecorded, true},
		{StepVerified, true},
	}
	for _, tc := range steps {
		name := tc.step
		if tc.noDefault {
			name += "/concurrently"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			if tc.noDefault {
				e.exec(t, `DROP TABLE chat_messages_default`)
			}
			apr := e.month(t, "chat_messages", month(2025, 4), 20000)
			n0, sum0 := e.fingerprint(t, apr)

			spec, err := json.Marshal(helperSpec{DSN: e.schema.DSN, Config: e.cfg, Step: tc.step})
			require.NoError(t, err)
			cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), killHelperEnv+"="+string(spec))
			out, err := cmd.StdoutPipe()
			require.NoError(t, err)
			cmd.Stderr = os.Stderr
			require.NoError(t, cmd.Start())
			paused := make(chan string, 1)
			go func() {
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					if strings.HasPrefix(sc.Text(), "PAUSED") || strings.HasPrefix(sc.Text(), "FINISHED") {
						paused <- sc.Text()
						return
					}
				}
				paused <- "EOF"
			}()
			select {
			case line := <-paused:
				require.Equal(t, "PAUSED "+tc.step, line)
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatal("helper did not reach the step")
			}
			require.NoError(t, syscall.Kill(cmd.Process.Pid, syscall.SIGKILL))
			_ = cmd.Wait()

			en := e.entry(t, "chat_messages", apr)
			if en.State != StateDetached {
				ex, _ := e.tableExists(t, apr)
				require.True(t, ex, "killed at %s: the partition is still there", tc.step)
			}

			res, err := e.archiver(t, nil, nil).Run(context.Background(), Options{})
			require.NoError(t, err)
			require.Equal(t, "archived", res.Items[0].Action, "%+v", res.Items)
			en = e.entry(t, "chat_messages", apr)
			require.Equal(t, StateDropped, en.State)
			require.Equal(t, []string{en.ObjectKey, en.ObjectKey + ".manifest.json"}, e.objects(t))
			require.Zero(t, e.incompleteUploads(t))
			_, err = Restore(context.Background(), e.archiver(t, nil, nil), "chat_messages", apr, RestoreAttach, "")
			require.NoError(t, err)
			n, sum := e.fingerprint(t, apr)
			require.Equal(t, n0, n)
			require.Equal(t, sum0, sum)
		})
	}
}
