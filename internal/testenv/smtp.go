package testenv

import (
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
)

// Mail is one message an SMTPSink accepted.
type Mail struct {
	From string
	To   []string
	Data string // headers and body as received, dot-unstuffed, CRLF line ends
}

// SMTPSink is a minimal SMTP server on a loopback port that keeps every message it is given.
// It offers neither STARTTLS nor AUTH: it stands in for the local relay alerts are sent to.
type SMTPSink struct {
	Host string
	Port int

	ln   net.Listener
	mu   sync.Mutex
	mail []Mail
	wg   sync.WaitGroup
}

// NewSMTPSink starts a sink; it stops at cleanup.
func NewSMTPSink(t testing.TB) *SMTPSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: smtp sink: %v", err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	s := &SMTPSink{Host: "127.0.0.1", Port: addr.Port, ln: ln}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

// Messages returns the messages received so far.
func (s *SMTPSink) Messages() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mail...)
}

func (s *SMTPSink) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			s.session(textproto.NewConn(conn))
		}()
	}
}

func (s *SMTPSink) session(c *textproto.Conn) {
	reply := func(line string) bool { return c.PrintfLine("%s", line) == nil }
	if !reply("220 sink ESMTP") {
		return
	}
	var cur Mail
	for {
		line, err := c.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			if c.PrintfLine("250-sink") != nil || !reply("250 8BITMIME") {
				return
			}
		case "HELO", "NOOP":
			reply("250 ok")
		case "RSET":
			cur = Mail{}
			reply("250 ok")
		case "MAIL":
			cur = Mail{From: addrOf(arg)}
			reply("250 ok")
		case "RCPT":
			cur.To = append(cur.To, addrOf(arg))
			reply("250 ok")
		case "DATA":
			if !reply("354 end with <CRLF>.<CRLF>") {
				return
			}
			b, err := io.ReadAll(c.DotReader())
			if err != nil {
				return
			}
			cur.Data = string(b)
			s.mu.Lock()
			s.mail = append(s.mail, cur)
			s.mu.Unlock()
			cur = Mail{}
			reply("250 queued")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 not implemented")
		}
	}
}

// addrOf takes the address out of "FROM:<a@b> SIZE=1" or "TO:<a@b>".
func addrOf(arg string) string {
	_, rest, _ := strings.Cut(arg, ":")
	rest, _, _ = strings.Cut(strings.TrimSpace(rest), " ")
	return strings.Trim(rest, "<>")
}
