package alert

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"strconv"
	"strings"
	"time"
)

// SMTPConfig is the alerts.smtp section. Email is off unless Host is set.
type SMTPConfig struct {
	// Host is the SMTP server; empty: no email.
	Host string `yaml:"host"`
	// Port of the SMTP server (587 for STARTTLS submission).
	Port int `yaml:"port"`
	// From is the sender address; To the recipients.
	From string   `yaml:"from"`
	To   []string `yaml:"to"`
	// Username and Password, when set, authenticate with AUTH PLAIN, which net/smtp only
	// does over TLS or to a loopback server.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// RequireTLS refuses a server that does not offer STARTTLS (it is used whenever offered).
	RequireTLS bool `yaml:"require_tls"`
	// Timeout bounds one delivery, connection to QUIT.
	Timeout time.Duration `yaml:"timeout"`
	// SubjectPrefix starts every subject.
	SubjectPrefix string `yaml:"subject_prefix"`
}

// WithDefaults fills unset fields.
func (c SMTPConfig) WithDefaults() SMTPConfig {
	if c.Port == 0 {
		c.Port = 25
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = "[job-service]"
	}
	return c
}

// Validate names the first bad key (relative to the smtp section).
func (c SMTPConfig) Validate() error {
	if c.Host == "" {
		return nil
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("port: %d is outside 1..65535", c.Port)
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return fmt.Errorf("from: %q: %w", c.From, err)
	}
	if len(c.To) == 0 {
		return errors.New("to: at least one recipient is required")
	}
	for _, to := range c.To {
		if _, err := mail.ParseAddress(to); err != nil {
			return fmt.Errorf("to: %q: %w", to, err)
		}
	}
	if c.Password != "" && c.Username == "" {
		return errors.New("username: required when a password is set")
	}
	if c.Timeout < time.Second {
		return fmt.Errorf("timeout: %s is below 1s", c.Timeout)
	}
	if strings.ContainsAny(c.SubjectPrefix, "\r\n") {
		return errors.New("subject_prefix: must be one line")
	}
	return nil
}

// mailer sends the alert as a plain-text email.
type mailer struct{ cfg SMTPConfig }

func (m *mailer) Channel() string { return "email" }

func (m *mailer) Send(ctx context.Context, a *Alert) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	addr := net.JoinHostPort(m.cfg.Host, strconv.Itoa(m.cfg.Port))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("smtp %s: %w", addr, err)
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline) // net/smtp takes no context; the deadline bounds every step
	c, err := smtp.NewClient(conn, m.cfg.Host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp %s: %w", addr, err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: m.cfg.Host, MinVersion: tls.VersionTLS12}); err != nil {
			return fmt.Errorf("smtp starttls: %w", err)
		}
	} else if m.cfg.RequireTLS {
		return fmt.Errorf("smtp %s does not offer STARTTLS and require_tls is set", addr)
	}
	if m.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", m.cfg.Username, m.cfg.Password, m.cfg.Host)); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	from, _ := mail.ParseAddress(m.cfg.From) // validated
	if err := c.Mail(from.Address); err != nil {
		return fmt.Errorf("smtp MAIL FROM: %w", err)
	}
	for _, to := range m.cfg.To {
		rcpt, _ := mail.ParseAddress(to)
		if err := c.Rcpt(rcpt.Address); err != nil {
			return fmt.Errorf("smtp RCPT TO %s: %w", rcpt.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if _, err := w.Write(m.message(a)); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	return c.Quit()
}

// message renders headers and a plain-text body; net/smtp's data writer dot-stuffs it and
// turns \n into CRLF.
func (m *mailer) message(a *Alert) []byte {
	first, _, _ := strings.Cut(a.Error, "\n")
	if len(first) > 150 {
		first = truncate(first, 150) + "…"
	}
	subject := fmt.Sprintf("%s %s failed: %s", m.cfg.SubjectPrefix, a.Job, first)
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\n", m.cfg.From)
	fmt.Fprintf(&b, "To: %s\n", strings.Join(m.cfg.To, ", "))
	fmt.Fprintf(&b, "Subject: %s\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\n", a.At.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s.%d@job-service>\n", strings.ReplaceAll(a.DedupeKey, ":", "."), a.At.UnixNano())
	fmt.Fprintf(&b, "X-Job-Service-Dedupe-Key: %s\n", a.DedupeKey)
	b.WriteString("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n")
	fmt.Fprintf(&b, "Job %s failed.\n\n", a.Job)
	fmt.Fprintf(&b, "Run:          %s (id %d, shard %d/%d, %s)\n", a.RunKey, a.RunID, a.Shard.Index, a.Shard.Total, a.Trigger)
	fmt.Fprintf(&b, "Scheduled at: %s\n", a.ScheduledAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Node:         %s\n", a.Node)
	if a.Suppressed > 0 {
		fmt.Fprintf(&b, "Also seen:    %d more times since the last alert about this problem\n", a.Suppressed)
	}
	fmt.Fprintf(&b, "\nError:\n%s\n", a.Error)
	if len(a.Result) > 0 {
		var pretty bytes.Buffer
		if json.Indent(&pretty, a.Result, "", "  ") == nil {
			fmt.Fprintf(&b, "\nResult:\n%s\n", pretty.String())
		}
	}
	fmt.Fprintf(&b, "\nDetails: jobctl show %d\nThe same problem stays quiet for the alert window; dedupe key %s.\n", a.RunID, a.DedupeKey)
	return b.Bytes()
}
