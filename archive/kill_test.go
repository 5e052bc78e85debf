package archive

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
)

// killHelperEnv carries the child's settings; when it is set, the test binary is the archiver
// process the parent test kills (see TestMain).
const killHelperEnv = "ARCHIVE_KILL_HELPER"

type helperSpec struct {
	DSN    string
	Config Config
	Step   string
}

// TestMain runs the package's tests, or, when killHelperEnv is set, is the archiver process
// TestArchiveKill9AtEachStep kills: it archives until the named step, says so on stdout and
// waits for SIGKILL.
func TestMain(m *testing.M) {
	if raw := os.Getenv(killHelperEnv); raw != "" {
		err := killHelper(raw)
		fmt.Printf("FINISHED without pausing: %v\n", err)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

func killHelper(raw string) error {
	var spec helperSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return err
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, spec.DSN)
	if err != nil {
		return err
	}
	s3, err := minio.New(testenv.S3Endpoint(), &minio.Options{
		Creds:        credentials.NewStaticV4(testenv.S3AccessKey(), testenv.S3SecretKey(), ""),
		BucketLookup: minio.BucketLookupPath, Region: "us-east-1",
	})
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	a, err := New(pool, s3, spec.Config, func() time.Time { return testNow }, log)
	if err != nil {
		return err
	}
	a.SetHook(func(_ context.Context, step string, _ *Entry) {
		if step == spec.Step {
			fmt.Println("PAUSED " + step)
			select {} // until SIGKILL
		}
	})
	_, err = a.Run(ctx, Options{})
	return err
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
			cmd := exec.Command(os.Args[0], "-test.run=^$")
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
