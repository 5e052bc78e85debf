// Package runlog keeps what a handler logs during a run with the run. The consumer puts a
// Source in the context it gives the handler, which makes the run's Buffer on its first line;
// Handler, wrapped around the node's slog handler, copies every record logged with that
// context (log.InfoContext(ctx, ...)) into the buffer and tags the node's own line with the
// run (run_id, job, run_key, shard, attempt). The buffer keeps the last MaxLines / MaxBytes of
// the attempt; the consumer flushes it to the ledger on each heartbeat and when the attempt
// ends, so logging costs no statement per line.
package runlog

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Bounds of one attempt's log, in lines and bytes (message and attributes).
const (
	MaxLines = 2000
	MaxBytes = 1 << 20
)

// Line is one captured record.
type Line struct {
	Seq   int // 1.. within the attempt
	At    time.Time
	Level string
	Msg   string
	Attrs string // key=value pairs
}

func (l Line) size() int { return len(l.Msg) + len(l.Attrs) + 32 }

// Buffer holds the last lines of one attempt. It is safe for concurrent use (a handler may
// log from several goroutines while the heartbeat flushes).
type Buffer struct {
	// Attrs tag the node's log lines written with the buffer's context.
	attrs []slog.Attr

	mu       sync.Mutex
	lines    []Line // oldest first; lines[head:] are kept, lines[head].Seq is the oldest
	head     int
	bytes    int
	seq      int // last seq assigned
	flushed  int // last seq handed out by Pending
	maxLines int
	maxBytes int
}

// NewBuffer returns a buffer bounded by MaxLines and MaxBytes whose lines in the node's log
// carry attrs.
func NewBuffer(attrs ...slog.Attr) *Buffer {
	return &Buffer{attrs: attrs, maxLines: MaxLines, maxBytes: MaxBytes}
}

// WithBounds overrides the bounds (tests).
func (b *Buffer) WithBounds(lines, bytes int) *Buffer {
	b.maxLines, b.maxBytes = lines, bytes
	return b
}

// Add appends a line, dropping the oldest ones beyond the bounds.
func (b *Buffer) Add(at time.Time, level slog.Level, msg, attrs string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.seq++
	ln := Line{Seq: b.seq, At: at, Level: level.String(), Msg: msg, Attrs: attrs}
	if ln.size() > b.maxBytes { // one huge line must not evict everything else and still not fit
		keep := max(b.maxBytes-len(ln.Attrs)-64, 0)
		ln.Msg = ln.Msg[:min(len(ln.Msg), keep)] + " …(truncated)"
	}
	b.lines = append(b.lines, ln)
	b.bytes += ln.size()
	for len(b.lines)-b.head > b.maxLines || (b.bytes > b.maxBytes && len(b.lines)-b.head > 1) {
		b.bytes -= b.lines[b.head].size()
		b.lines[b.head] = Line{}
		b.head++
	}
	if b.head > 0 && b.head >= len(b.lines)/2 {
		// Compact now and then (amortised O(1) per line) so the array does not keep every line.
		b.lines = append(b.lines[:0:0], b.lines[b.head:]...)
		b.head = 0
	}
}

// Record appends a line the node itself writes about the run (start, outcome), rendered as a
// handler's record would be, without passing through slog: it costs one line, no I/O.
func (b *Buffer) Record(at time.Time, level slog.Level, msg string, attrs ...slog.Attr) {
	b.Add(at, level, msg, renderAttrs(attrs))
}

// renderAttrs is attrs as a handler's record keeps them: key=value pairs, space-separated.
func renderAttrs(attrs []slog.Attr) string {
	var sb strings.Builder
	for _, a := range attrs {
		writeAttr(&sb, "", a)
	}
	return strings.TrimSpace(sb.String())
}

// Pending returns the lines not handed out before and the oldest seq still kept (lines
// before it were dropped), and marks them handed out. A flush that fails should call
// Unflush so they go again.
func (b *Buffer) Pending() (lines []Line, firstSeq int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	kept := b.lines[b.head:]
	firstSeq = b.seq + 1
	if len(kept) > 0 {
		firstSeq = kept[0].Seq
	}
	for i, ln := range kept {
		if ln.Seq > b.flushed {
			lines = append([]Line(nil), kept[i:]...)
			break
		}
	}
	b.flushed = b.seq
	return lines, firstSeq
}

// Unflush gives back lines a failed flush took: the next Pending returns them again (those
// still kept).
func (b *Buffer) Unflush(lines []Line) {
	if len(lines) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushed = min(b.flushed, lines[0].Seq-1)
}

// Dropped is how many lines the bounds pushed out.
func (b *Buffer) Dropped() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.lines) == b.head {
		return b.seq
	}
	return b.lines[b.head].Seq - 1
}

type ctxKey struct{}

// Source makes a run's Buffer when its first line comes, so that a run whose handler never
// logs allocates none. Buffer must return the same buffer on every call and be safe for
// concurrent use.
type Source interface {
	Buffer() *Buffer
}

// WithBuffer returns ctx carrying b: records logged with it go to b.
func WithBuffer(ctx context.Context, b *Buffer) context.Context {
	return context.WithValue(ctx, ctxKey{}, b)
}

// WithSource returns ctx carrying s: the first record logged with it makes s's buffer, and
// every record goes there.
func WithSource(ctx context.Context, s Source) context.Context {
	return context.WithValue(ctx, ctxKey{}, s)
}

// FromContext returns the buffer of ctx (making a Source's), or nil.
func FromContext(ctx context.Context) *Buffer {
	if ctx == nil {
		return nil
	}
	switch v := ctx.Value(ctxKey{}).(type) {
	case *Buffer:
		return v
	case Source:
		return v.Buffer()
	}
	return nil
}

// inRun reports whether ctx is a run's, without making its buffer.
func inRun(ctx context.Context) bool {
	return ctx != nil && ctx.Value(ctxKey{}) != nil
}

// Handler is a slog.Handler that copies records logged with a buffer's context into it
// (Info and above, whatever the node's level) and passes them on, tagged with the run, to
// the handler it wraps.
type Handler struct {
	next   slog.Handler
	prefix string // attrs added by WithAttrs, rendered
	group  string // open group, "a.b."
}

// Wrap returns next wrapped in a Handler.
func Wrap(next slog.Handler) *Handler { return &Handler{next: next} }

// Enabled lets run records through even below the node's level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	if level >= slog.LevelInfo && inRun(ctx) {
		return true
	}
	return h.next.Enabled(ctx, level)
}

// Handle captures and forwards a record.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	b := FromContext(ctx)
	if b == nil {
		return h.next.Handle(ctx, r)
	}
	var sb strings.Builder
	sb.WriteString(h.prefix)
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&sb, h.group, a)
		return true
	})
	at := r.Time
	if at.IsZero() {
		at = time.Now()
	}
	b.Add(at, r.Level, r.Message, strings.TrimSpace(sb.String()))
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	r = r.Clone()
	r.AddAttrs(b.attrs...)
	return h.next.Handle(ctx, r)
}

// WithAttrs keeps the attrs for the captured lines too.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var sb strings.Builder
	sb.WriteString(h.prefix)
	for _, a := range attrs {
		writeAttr(&sb, h.group, a)
	}
	return &Handler{next: h.next.WithAttrs(attrs), prefix: sb.String(), group: h.group}
}

// WithGroup qualifies later keys.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &Handler{next: h.next.WithGroup(name), prefix: h.prefix, group: h.group + name + "."}
}

func writeAttr(sb *strings.Builder, group string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		g := group
		if a.Key != "" {
			g += a.Key + "."
		}
		for _, x := range a.Value.Group() {
			writeAttr(sb, g, x)
		}
		return
	}
	v := a.Value.String()
	if strings.ContainsAny(v, " \t\n\"=") || v == "" {
		v = fmt.Sprintf("%q", v)
	}
	sb.WriteString(" " + group + a.Key + "=" + v)
}
