package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// brokerPort picks a broker port whose fast channel (port-2) and HA port (port+1) are free too.
// It picks below Linux's ephemeral range (32768 and up), which the kernel hands to listeners
// on port 0 and to outgoing connections: a master killed mid-test comes back on the same
// ports, and in the ephemeral range a parallel test's connection or proxy could take one of
// them while the master is down (the restart then never binds; make test saw it once).
func brokerPort(avoid int) (int, error) {
	const low, high = 20000, 32000
	for range 200 {
		p := low + rand.IntN(high-low)
		if p != avoid && p-2 != avoid && p+1 != avoid && portFree(p) && portFree(p-2) && portFree(p+1) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free port triple for the broker in %d..%d", low, high)
}

// brokerConf holds the shared broker's settings (deploy/local/rocketmq/broker.conf) that matter
// here; brokerName tells masters of one cluster apart.
func brokerConf(name string, port int, nameServer, store string) string {
	return fmt.Sprintf(`brokerClusterName=ChaosCluster
brokerName=%s
brokerId=0
brokerIP1=127.0.0.1
brokerIP2=127.0.0.1
bindAddress=127.0.0.1
listenPort=%d
namesrvAddr=%s
storePathRootDir=%s
mappedFileSizeCommitLog=67108864
mappedFileSizeConsumeQueue=600000
mappedFileSizeTimerLog=16777216
diskMaxUsedSpaceRatio=95
timerWheelEnable=true
timerPrecisionMs=100
autoCreateTopicEnable=false
autoCreateSubscriptionGroup=true
waitTimeMillsInSendQueue=1000
registerNameServerPeriod=10000
`, name, port, nameServer, store)
}

// Master is one more broker master registered with a private pair's name server: its own
// name, ports and store, so a test can kill one master of a two-master cluster.
type Master struct {
	Name   string
	Broker string
	r      *RocketMQ // dir, lib and the broker process; its namesrv is not ours
}

// AddMaster starts another broker master on r's name server with its store in dir.
func (r *RocketMQ) AddMaster(ctx context.Context, name, dir string) (*Master, error) {
	port, err := brokerPort(0)
	if err != nil {
		return nil, err
	}
	m := &Master{Name: name, Broker: fmt.Sprintf("127.0.0.1:%d", port),
		r: &RocketMQ{NameServer: r.NameServer, Broker: fmt.Sprintf("127.0.0.1:%d", port), dir: dir, lib: r.lib}}
	for _, d := range []string{"conf", "logs", "store"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	conf := brokerConf(name, port, r.NameServer, filepath.Join(dir, "store"))
	if err := os.WriteFile(filepath.Join(dir, "conf", "broker.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := m.Start(ctx); err != nil {
		m.Kill()
		return nil, err
	}
	return m, nil
}

// Start starts the master (again, with the same store) and waits until it booted (a JVM on
// a box shared by several test runs has taken over two minutes).
func (m *Master) Start(ctx context.Context) error {
	var err error
	m.r.broker, err = m.r.java("broker", "rmq.broker.logback.xml", "-Xms128m -Xmx384m -XX:MaxDirectMemorySize=384m",
		"org.apache.rocketmq.broker.BrokerStartup", "-c", filepath.Join(m.r.dir, "conf", "broker.conf"), "-n", m.r.NameServer)
	if err != nil {
		return err
	}
	out := filepath.Join(m.r.dir, "logs", "broker.out")
	return waitFor(ctx, 240*time.Second, "broker "+m.Broker, func() bool {
		return portOpen(m.Broker) && fileContains(out, "boot success")
	})
}

// Kill ends the master with SIGKILL (no shutdown hook runs, like a crashed machine's process)
// and waits until its port is closed.
func (m *Master) Kill() {
	if c := m.r.broker; c != nil && c.Process != nil {
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		deadline := time.Now().Add(30 * time.Second)
		for processAlive(c.Process.Pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	_ = waitFor(context.Background(), 10*time.Second, "port closed", func() bool { return !portOpen(m.Broker) })
}

// Freeze stops the master with SIGSTOP: its connections stay open, so the name server keeps
// routing it (until its two-minute expiry) while it answers nothing, like a hung process or a
// host cut off without a reset.
func (m *Master) Freeze() error { return m.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen master.
func (m *Master) Thaw() error { return m.signal(syscall.SIGCONT) }

func (m *Master) signal(sig syscall.Signal) error {
	c := m.r.broker
	if c == nil || c.Process == nil {
		return fmt.Errorf("master %s is not running", m.Name)
	}
	return syscall.Kill(-c.Process.Pid, sig)
}
