package chaos

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// RocketMQ is a private namesrv + broker pair on their own loopback ports, started from the
// jars deploy/local/rocketmq.sh caches, so a test can restart it without touching the shared
// broker other tests use.
type RocketMQ struct {
	NameServer string
	Broker     string
	dir        string
	lib        string
	namesrv    *exec.Cmd
	broker     *exec.Cmd
}

// RocketMQLib is where deploy/local/rocketmq.sh keeps the RocketMQ jars.
func RocketMQLib() string {
	if v := os.Getenv("JOBSVC_RMQ_LIB"); v != "" {
		return v
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "job-service", "rocketmq-5.3.3", "lib")
}

// StartRocketMQ starts a private pair with its store in dir.
func StartRocketMQ(ctx context.Context, dir string) (*RocketMQ, error) {
	lib := RocketMQLib()
	if _, err := os.Stat(filepath.Join(lib, ".complete")); err != nil {
		return nil, fmt.Errorf("rocketmq jars missing in %s (run `make stack-up` once): %w", lib, err)
	}
	nsPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	bPort, err := brokerPort(nsPort)
	if err != nil {
		return nil, err
	}
	r := &RocketMQ{NameServer: fmt.Sprintf("127.0.0.1:%d", nsPort), Broker: fmt.Sprintf("127.0.0.1:%d", bPort),
		dir: dir, lib: lib}
	for _, d := range []string{"conf", "logs", "store"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	ns := fmt.Sprintf("listenPort=%d\nbindAddress=127.0.0.1\n", nsPort)
	broker := brokerConf("chaos-broker", bPort, r.NameServer, filepath.Join(dir, "store"))
	if err := os.WriteFile(filepath.Join(dir, "conf", "namesrv.conf"), []byte(ns), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "conf", "broker.conf"), []byte(broker), 0o644); err != nil {
		return nil, err
	}
	if err := r.Start(ctx); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

func (r *RocketMQ) java(name, logback, heap, main string, args ...string) (*exec.Cmd, error) {
	argv := strings.Fields(heap)
	argv = append(argv,
		"--add-opens", "java.base/java.nio=ALL-UNNAMED",
		"--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
		"--add-opens", "java.base/java.lang=ALL-UNNAMED",
		"--add-opens", "java.base/java.util=ALL-UNNAMED",
		"--add-exports", "java.base/sun.nio.ch=ALL-UNNAMED",
		"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Duser.home="+r.dir, "-Drocketmq.home.dir="+r.dir, "-Drmq.logback.configurationFile="+logback,
		"-cp", filepath.Join(r.lib, "*"), main)
	argv = append(argv, args...)
	out, err := os.OpenFile(filepath.Join(r.dir, "logs", name+".out"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(javaBin(), argv...)
	cmd.Dir = r.dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { _ = cmd.Wait(); out.Close() }()
	return cmd, nil
}

func javaBin() string {
	if v := os.Getenv("JOBSVC_JAVA"); v != "" {
		return v
	}
	return "java"
}

// Start starts namesrv, then the broker, and waits until the broker booted.
func (r *RocketMQ) Start(ctx context.Context) error {
	var err error
	r.namesrv, err = r.java("namesrv", "rmq.namesrv.logback.xml", "-Xms64m -Xmx128m",
		"org.apache.rocketmq.namesrv.NamesrvStartup", "-c", filepath.Join(r.dir, "conf", "namesrv.conf"))
	if err != nil {
		return err
	}
	if err := waitFor(ctx, 90*time.Second, "namesrv "+r.NameServer, func() bool { return portOpen(r.NameServer) }); err != nil {
		return err
	}
	r.broker, err = r.java("broker", "rmq.broker.logback.xml", "-Xms128m -Xmx384m -XX:MaxDirectMemorySize=384m",
		"org.apache.rocketmq.broker.BrokerStartup", "-c", filepath.Join(r.dir, "conf", "broker.conf"), "-n", r.NameServer)
	if err != nil {
		return err
	}
	out := filepath.Join(r.dir, "logs", "broker.out")
	return waitFor(ctx, 240*time.Second, "broker "+r.Broker, func() bool {
		return portOpen(r.Broker) && fileContains(out, "boot success")
	})
}

// Stop stops the broker, then namesrv (SIGTERM: their shutdown hooks flush the store), and
// waits for both to exit; a process that takes longer than 30 s is killed.
func (r *RocketMQ) Stop() {
	for _, c := range []*exec.Cmd{r.broker, r.namesrv} {
		if c == nil || c.Process == nil {
			continue
		}
		_ = c.Process.Signal(syscall.SIGTERM)
		deadline := time.Now().Add(30 * time.Second)
		for processAlive(c.Process.Pid) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if processAlive(c.Process.Pid) {
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		}
	}
	for _, a := range []string{r.Broker, r.NameServer} {
		_ = waitFor(context.Background(), 10*time.Second, "port closed", func() bool { return !portOpen(a) })
	}
}

// WaitRoute waits until the name server routes topic to a broker. A topic just created on a
// fresh broker reaches the name server with the broker's next registration; a consumer
// started before that fails with "route info not found".
func (r *RocketMQ) WaitRoute(ctx context.Context, topic string) error {
	adm, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver([]string{r.NameServer})))
	if err != nil {
		return fmt.Errorf("rocketmq admin: %w", err)
	}
	defer adm.Close() //nolint:errcheck // best effort on a short-lived client
	return waitFor(ctx, time.Minute, "route of "+topic, func() bool {
		qs, err := adm.FetchPublishMessageQueues(ctx, topic)
		return err == nil && len(qs) > 0
	})
}

// Kill ends both servers at once (cleanup: nothing to flush for).
func (r *RocketMQ) Kill() {
	for _, c := range []*exec.Cmd{r.broker, r.namesrv} {
		if c != nil && c.Process != nil {
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		}
	}
}

// Restart stops and starts both servers with the same store.
func (r *RocketMQ) Restart(ctx context.Context) error {
	r.Stop()
	return r.Start(ctx)
}

// processAlive reports whether pid exists and is not a zombie (exec.Cmd.Wait reaps ours).
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// Postgres is a private PostgreSQL cluster on its own port (initdb into a temp folder as the
// postgres OS user when run as root, as deploy/local/postgres.sh does), so a test can restart it.
type Postgres struct {
	DSN  string
	Port int
	dir  string
	bin  string
	as   *user.User // nil when not root
}

// pgBin returns the newest installed server binaries folder.
func pgBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) < pgMajor(dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "pg_ctl")); err == nil {
			return dirs[i], nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries under /usr/lib/postgresql (make stack-up installs them)")
}

func pgMajor(d string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
	return n
}

// StartPostgres creates and starts a cluster. Its DSN's user is jobsvc (trust auth, loopback).
func StartPostgres(ctx context.Context) (*Postgres, error) {
	bin, err := pgBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "jobsvc-chaos-pg-")
	if err != nil {
		return nil, err
	}
	p := &Postgres{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		if p.as, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("postgres refuses root and OS user postgres is missing: %w", err)
		}
		uid, _ := strconv.Atoi(p.as.Uid)
		gid, _ := strconv.Atoi(p.as.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	if p.Port, err = FreePort(); err != nil {
		return nil, err
	}
	if out, err := p.run(ctx, "initdb", "-D", p.data(), "-U", "jobsvc", "-A", "trust", "-E", "UTF8", "--no-locale"); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	conf := fmt.Sprintf("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = ''\n"+
		"max_connections = 100\nshared_buffers = 32MB\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"+
		"timezone = 'UTC'\n", p.Port)
	f, err := os.OpenFile(filepath.Join(p.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(conf)
	f.Close()
	if err != nil {
		return nil, err
	}
	p.DSN = fmt.Sprintf("postgres://jobsvc@127.0.0.1:%d/postgres?sslmode=disable", p.Port)
	if err := p.Start(ctx); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func (p *Postgres) data() string { return filepath.Join(p.dir, "data") }

// run runs a server binary as the postgres user when we are root.
func (p *Postgres) run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	path := filepath.Join(p.bin, tool)
	var cmd *exec.Cmd
	if p.as != nil {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = "/"
	return cmd.CombinedOutput()
}

// Start starts the server and waits until it accepts connections.
func (p *Postgres) Start(ctx context.Context) error {
	out, err := p.run(ctx, "pg_ctl", "-D", p.data(), "-l", filepath.Join(p.dir, "postgres.log"), "-w", "-t", "60", "start")
	if err != nil {
		return fmt.Errorf("pg_ctl start: %w\n%s", err, out)
	}
	return nil
}

// Stop stops the server; mode is fast (disconnect clients, clean shutdown) or immediate (crash).
func (p *Postgres) Stop(ctx context.Context, mode string) error {
	out, err := p.run(ctx, "pg_ctl", "-D", p.data(), "-m", mode, "-w", "-t", "60", "stop")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Close stops the server and removes its files.
func (p *Postgres) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = p.Stop(ctx, "immediate")
	_ = os.RemoveAll(p.dir)
}
