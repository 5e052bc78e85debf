package chaos

import (
	"io"
	"net"
	"sync"
)

// Proxy is a loopback TCP proxy a test puts between one node and a server, to cut that node
// off (a partition: its connections stop carrying bytes and new ones hang) and heal it,
// while the server and every other client carry on.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns []net.Conn
	held  []net.Conn
}

// NewProxy listens on a free loopback port and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target}
	go p.accept()
	return p, nil
}

// Addr is host:port of the proxy.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.held = append(p.held, c) // a partition: the connect succeeds, nothing answers
			p.mu.Unlock()
			continue
		}
		p.mu.Unlock()
		go p.forward(c)
	}
}

func (p *Proxy) forward(c net.Conn) {
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		s.Close()
		c.Close()
		return
	}
	p.conns = append(p.conns, c, s)
	p.mu.Unlock()
	go pipe(c, s, p)
	go pipe(s, c, p)
}

// pipe copies until either side fails; while the proxy is cut it stops copying, so bytes in
// flight are neither delivered nor refused.
func pipe(dst, src net.Conn, p *Proxy) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			cut := p.cut
			p.mu.Unlock()
			if cut {
				return // drop it; the connection is closed at Heal
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	if err := dst.Close(); err != nil && err != io.EOF {
		return
	}
}

// Cut partitions the proxied clients from the server: open connections carry nothing more,
// new ones connect and then hang.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
}

// Heal ends the partition: the connections of the cut (dead by now for the client) are
// closed, and new ones are forwarded again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range append(p.conns, p.held...) {
		c.Close()
	}
	p.conns, p.held, p.cut = nil, nil, false
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.ln.Close()
	p.Heal()
}
