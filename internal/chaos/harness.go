package chaos

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/mq"
)

// RepoRoot is the repository root (where go.mod is).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Build compiles testnode into dir and returns the binary's path.
func Build(dir string) (string, error) {
	repoRoot := RepoRoot()
	bin := filepath.Join(dir, "testnode")
	cmd := exec.Command("go", "build", "-o", bin, "./internal/chaos/testnode")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build testnode: %w\n%s", err, out)
	}
	return bin, nil
}

// BuiltTestnode builds testnode into a temporary directory the first time it is called in a
// process and returns that binary's path (and the build's error) every time: the benchmarks
// of internal/bench and bench/peers start many nodes from one build.
var BuiltTestnode = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "jobsvc-testnode-")
	if err != nil {
		return "", err
	}
	return Build(dir)
})

// Settings are the knobs of a node's config file that the tests turn.
type Settings struct {
	DSN        string
	MQ         mq.Config
	LeaseKey   int64
	Ticker     bool
	Interval   time.Duration // ticker.interval
	Lookahead  time.Duration
	Misfire    time.Duration // ticker.misfire_tolerance
	Repair     time.Duration // ticker.repair_interval
	Overdue    time.Duration // ticker.overdue_after (0: the service's default)
	Heartbeat  time.Duration
	StaleAfter time.Duration
	Drain      time.Duration
	Backoff    time.Duration // consumer.retry_backoff (max is 4x)
	Goroutines int
	MaxRunning int
	// Consumer holds more keys of the consumer section, as YAML flow pairs ("ledger_flushers: 1").
	Consumer string
	// LeaseTimeout is ticker.lease_timeout (default: the production default, 15s).
	LeaseTimeout time.Duration
	// DeliverAhead is ticker.deliver_ahead (0: the service's default).
	DeliverAhead time.Duration
	// BrokerGoneAfter is ticker.broker_gone_after (0: the service's default).
	BrokerGoneAfter time.Duration
	// Env is added to the node's environment (JOBSVC_TEST_CLOCK_SKEW=5m skews its clock).
	Env []string
	// Jobs is the YAML body of the jobs section, indented by two spaces.
	Jobs string
	// Extra is appended to the config file as is: more top-level sections (s3, handlers).
	Extra string
}

// withDefaults fills unset knobs with the fast settings the fault tests use: a small
// heartbeat and stale window, so a vanished node is noticed in seconds.
func (s Settings) withDefaults() Settings {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&s.Interval, 200*time.Millisecond)
	def(&s.Lookahead, 3*time.Second)
	def(&s.Misfire, 5*time.Second)
	def(&s.Repair, time.Second)
	def(&s.Heartbeat, 300*time.Millisecond)
	def(&s.StaleAfter, 1500*time.Millisecond)
	def(&s.Drain, 5*time.Second)
	def(&s.Backoff, 500*time.Millisecond)
	// ticker.stuck_after defaults to three times retry_backoff_max (4x Backoff) and may not be
	// below repair_interval: production repair timings get a backoff long enough for them.
	s.Backoff = max(s.Backoff, (s.Repair+11)/12)
	def(&s.LeaseTimeout, 15*time.Second)
	if s.Goroutines == 0 {
		s.Goroutines = 64
	}
	if s.MaxRunning == 0 {
		s.MaxRunning = 8
	}
	if s.Jobs == "" {
		s.Jobs = "  {}"
	}
	return s
}

// YAML renders the config file of node name.
func (s Settings) YAML(name string) string {
	s = s.withDefaults()
	brokers := "[]"
	if len(s.MQ.BrokerAddrs) > 0 {
		quoted := make([]string, len(s.MQ.BrokerAddrs))
		for i, b := range s.MQ.BrokerAddrs {
			quoted[i] = strconv.Quote(b)
		}
		brokers = "[" + strings.Join(quoted, ", ") + "]"
	}
	overdue := ""
	if s.Overdue > 0 {
		overdue = ", overdue_after: " + s.Overdue.String()
	}
	if s.DeliverAhead > 0 {
		overdue += ", deliver_ahead: " + s.DeliverAhead.String()
	}
	if s.BrokerGoneAfter > 0 {
		overdue += ", broker_gone_after: " + s.BrokerGoneAfter.String()
	}
	queues := s.MQ.QueueNums
	if queues == 0 {
		queues = 8
	}
	consumerExtra := ""
	if s.Consumer != "" {
		consumerExtra = ", " + s.Consumer
	}
	jobs := s.Jobs
	if !strings.HasPrefix(strings.TrimLeft(jobs, "\n"), " ") {
		jobs = "  " + jobs
	}
	// The production jobs' default schedules would fire in the middle of a fault test.
	jobs = testenv.OnlyTheseJobs(jobs, handlers.Kinds())
	return fmt.Sprintf(`node: %s
log: {level: info, format: text}
postgres: {dsn: %q, max_conns: 20}
rocketmq: {name_servers: [%q], topic: %s, schedule_topic: %s, consumer_group: %s, producer_group: %s, broker_addrs: %s, queue_nums: %d, send_timeout: 3s}
ticker: {enabled: %t, interval: %s, lookahead: %s, misfire_tolerance: %s, lease_key: %d, repair_interval: %s, lease_timeout: %s%s}
consumer: {heartbeat_interval: %s, stale_after: %s, drain_timeout: %s, retry_backoff: %s, retry_backoff_max: %s, goroutines: %d, max_running: %d%s}
admin: {listen: "127.0.0.1:0"}
jobs:
%s
%s
`, name, s.DSN, s.MQ.NameServers[0], s.MQ.Topic, s.MQ.WithDefaults().ScheduleTopic, s.MQ.ConsumerGroup, s.MQ.ProducerGroup, brokers, queues,
		s.Ticker, s.Interval, s.Lookahead, s.Misfire, s.LeaseKey, s.Repair, s.LeaseTimeout, overdue,
		s.Heartbeat, s.StaleAfter, s.Drain, s.Backoff, 4*s.Backoff, s.Goroutines, s.MaxRunning, consumerExtra, jobs, s.Extra)
}

// Proc is one running node process.
type Proc struct {
	Name    string
	Started time.Time
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	mu      sync.Mutex
	state   *os.ProcessState
	waitErr error
}

// Start writes name's config into dir and starts bin with it. Output goes to dir/name.log.
func Start(bin, dir, name string, s Settings) (*Proc, error) {
	return startConfig(bin, dir, name, s.YAML(name), s.Env)
}

// startConfig starts bin with the config text cfg (see Start).
func startConfig(bin, dir, name, cfg string, env []string) (*Proc, error) {
	cfgPath := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The rocketmq client logs to $HOME/logs; keep that out of the real home.
	cmd.Env = append(append(os.Environ(), "HOME="+dir), env...)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Started: time.Now(), cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.state, p.waitErr = cmd.ProcessState, err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Alive reports whether the process has not exited.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Wait waits up to timeout for the process to exit and returns its exit code (-1 when a
// signal ended it).
func (p *Proc) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return 0, fmt.Errorf("%s still running after %s", p.Name, timeout)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state.ExitCode(), nil
}

// Kill sends SIGKILL (and SIGCONT, in case it was stopped) and waits for the exit.
func (p *Proc) Kill() {
	_ = p.Signal(syscall.SIGKILL)
	_ = p.Signal(syscall.SIGCONT)
	<-p.done
}

// Log returns the node's output so far.
func (p *Proc) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// WaitLog polls the node's output until it contains s or timeout passes.
func (p *Proc) WaitLog(s string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(p.Log(), s) {
			return nil
		}
		if !p.Alive() {
			p.mu.Lock()
			state, werr := p.state, p.waitErr
			p.mu.Unlock()
			return fmt.Errorf("%s exited (%v, %v) before logging %q:\n%s", p.Name, state, werr, s, tail(p.Log(), 40))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not log %q within %s", p.Name, s, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return fmt.Sprintf("(%d bytes)\n%s", len(s), strings.Join(all, "\n"))
}

// Cluster starts and tracks nodes of one test; every node still running is killed at cleanup
// and the output of every node is logged when the test failed.
type Cluster struct {
	T        testing.TB
	Bin, Dir string
	Settings Settings

	mu    sync.Mutex
	procs []*Proc
}

// NewCluster returns a cluster whose nodes share s (their names differ).
func NewCluster(t testing.TB, bin string, s Settings) *Cluster {
	c := &Cluster{T: t, Bin: bin, Dir: t.TempDir(), Settings: s}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, p := range c.procs {
			if p.Alive() {
				p.Kill()
			}
			if t.Failed() {
				t.Logf("---- output of node %s ----\n%s", p.Name, tail(p.Log(), 150))
			}
		}
	})
	return c
}

// Start starts node name with the cluster's settings, changed by tweak when not nil, and
// waits until it logged that it started.
func (c *Cluster) Start(name string, tweak func(*Settings)) *Proc {
	c.T.Helper()
	s := c.Settings
	if tweak != nil {
		tweak(&s)
	}
	p, err := Start(c.Bin, c.Dir, name, s)
	if err != nil {
		c.T.Fatal(err)
	}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	if err := p.WaitLog("node started", 60*time.Second); err != nil {
		c.T.Fatal(err)
	}
	return p
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func portOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// waitFor polls cond every 100 ms until it holds, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// fileContains reports whether path contains s.
func fileContains(path, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte(s))
}
