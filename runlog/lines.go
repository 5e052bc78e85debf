package runlog

import (
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The first and last line of an attempt's log are the node's own: who ran which attempt of
// what, and how it ended. A node writes them only for attempts whose handler logged; for the
// others the ledger builds them from the run's record when the log is read (ledger.RunLogs),
// with these same functions, so both read alike.

// StartMsg and EndMsg are the messages of an attempt's first and last line.
const (
	StartMsg = "run started"
	EndMsg   = "run finished"
)

// Start is what an attempt's first line says.
type Start struct {
	Node          string
	Attempt       int
	Shard, Shards int
	Trigger       string
	Params        []byte
	ScheduleDelay time.Duration
}

// Attrs are the first line's attributes.
func (s Start) Attrs() []slog.Attr {
	params := Summary(s.Params)
	if params == "" {
		params = "{}"
	}
	return []slog.Attr{slog.String("node", s.Node), slog.Int("attempt", s.Attempt),
		slog.String("shard", strconv.Itoa(s.Shard)+"/"+strconv.Itoa(s.Shards)),
		slog.String("trigger", s.Trigger), slog.String("params", params),
		slog.Duration("schedule_delay", s.ScheduleDelay)}
}

// End is what an attempt's last line says.
type End struct {
	Status  string
	Elapsed time.Duration
	Result  []byte // JSON, nil for none
	Err     string
}

// Level is the last line's level: info for a success, warn for anything else.
func (e End) Level() slog.Level {
	if e.Status == "succeeded" {
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

// Attrs are the last line's attributes.
func (e End) Attrs() []slog.Attr {
	attrs := make([]slog.Attr, 0, 4)
	attrs = append(attrs, slog.String("status", e.Status), slog.Int64("duration_ms", e.Elapsed.Milliseconds()))
	if e.Result != nil {
		attrs = append(attrs, slog.String("result", Summary(e.Result)))
	}
	if e.Err != "" {
		attrs = append(attrs, slog.String("err", Summary([]byte(e.Err))))
	}
	return attrs
}

// Render is the line a Buffer's Record would keep, outside any buffer.
func Render(seq int, at time.Time, level slog.Level, msg string, attrs ...slog.Attr) Line {
	return Line{Seq: seq, At: at, Level: level.String(), Msg: msg, Attrs: renderAttrs(attrs)}
}

// maxSummary bounds the result, params and error of the first and last lines: one line.
const maxSummary = 300

// Summary is b on one line, cut at maxSummary bytes (on a rune boundary).
func Summary(b []byte) string {
	s := string(b)
	if len(s) > maxSummary {
		n := maxSummary
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n] + "…"
	}
	if strings.ContainsAny(s, "\n\r") {
		s = strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
	}
	return s
}
