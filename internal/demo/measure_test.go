package demo

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
)

// measurement is one job run's cost: wall time against the job's period, this process's peak
// RSS during the run (it runs the real handler through handlertest.Run, so that is the node's
// share), the CPU the backend servers spent meanwhile, and Postgres blocks and tuples on the
// benchmark's own schema.
type measurement struct {
	b       *testing.B
	job     string
	size    string
	period  time.Duration
	backend []string // substrings of the server processes' command lines
	schema  *testenv.Schema

	start   time.Time
	cpu0    map[string]time.Duration
	pg0     pgStats
	rssBase int64
}

// startMeasure frees what seeding left in the heap, resets the peak RSS and snapshots the
// backends' counters.
func startMeasure(b *testing.B, job, size string, period time.Duration, s *testenv.Schema, backends ...string) *measurement {
	m := &measurement{b: b, job: job, size: size, period: period, backend: backends, schema: s, cpu0: map[string]time.Duration{}}
	for _, be := range backends {
		m.cpu0[be] = procCPU(be)
	}
	if s != nil {
		m.pg0 = readPGStats(b, s)
	}
	runtime.GC()
	debug.FreeOSMemory()
	require.NoError(b, os.WriteFile("/proc/self/clear_refs", []byte("5"), 0))
	m.rssBase = procStatus(b, "VmRSS:")
	m.start = time.Now()
	return m
}

// stop reports the figures as benchmark metrics and logs one Markdown table row:
// | job | size | wall | period | % of period | peak RSS (base) | backend CPU | PG | load |
func (m *measurement) stop(extra string) time.Duration {
	wall := time.Since(m.start)
	peak := procStatus(m.b, "VmHWM:")
	var cpu []string
	for _, be := range m.backend {
		d := procCPU(be) - m.cpu0[be]
		cpu = append(cpu, fmt.Sprintf("%s %.1f s CPU", be, d.Seconds()))
		m.b.ReportMetric(d.Seconds(), strings.ReplaceAll(be, "-", "_")+"_cpu_s")
	}
	pg := ""
	if m.schema != nil {
		d := readPGStats(m.b, m.schema).minus(m.pg0)
		pg = d.String()
		m.b.Logf("%s per table: %s", m.job, d.tables())
		m.b.ReportMetric(float64(d.blocks)*8/1024, "pg_MB_touched")
	}
	m.b.ReportMetric(float64(wall.Milliseconds()), "ms/run")
	m.b.ReportMetric(100*wall.Seconds()/m.period.Seconds(), "%period")
	m.b.ReportMetric(float64(peak)/(1<<20), "peakRSS_MiB")
	m.b.Logf("ROW | %s | %s | %s | %s | %.3f%% | %.0f MiB (%.0f before) | %s | %s | %s | %s |",
		m.job, m.size, wall.Round(time.Millisecond), m.period, 100*wall.Seconds()/m.period.Seconds(),
		float64(peak)/(1<<20), float64(m.rssBase)/(1<<20), strings.Join(cpu, ", "), pg, extra, loadAvg())
	return wall
}

// procStatus reads a kB field of /proc/self/status in bytes.
func procStatus(b *testing.B, field string) int64 {
	f, err := os.Open("/proc/self/status")
	require.NoError(b, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			require.NoError(b, err)
			return kb << 10
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// procCPU is the user+system CPU of every process whose command line contains match (the
// local stack's servers run on this machine; the benchmark runs as a user who may read them).
func procCPU(match string) time.Duration {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var ticks int64
	for _, d := range dirs {
		cmd, err := os.ReadFile(d + "/cmdline")
		if err != nil || !strings.Contains(string(cmd), match) || strings.Contains(string(cmd), ".test") {
			continue
		}
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name in parentheses: utime and stime are the 12th and 13th.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			ticks += u + s
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return "load " + strings.Join(f[:3], " ")
}

// pgStats are counters of the tables of one schema.
type pgStats struct {
	blocks, read, seqTup, idxTup int64
	perTable                     map[string][4]int64 // blocks, seq scans, rows seq-read, rows via index
}

func (a pgStats) minus(b pgStats) pgStats {
	d := pgStats{a.blocks - b.blocks, a.read - b.read, a.seqTup - b.seqTup, a.idxTup - b.idxTup, map[string][4]int64{}}
	for t, v := range a.perTable {
		w := b.perTable[t]
		if diff := [4]int64{v[0] - w[0], v[1] - w[1], v[2] - w[2], v[3] - w[3]}; diff != [4]int64{} {
			d.perTable[t] = diff
		}
	}
	return d
}

// tables lists the tables the run touched: blocks, seq scans, rows seq-read, rows via index.
func (a pgStats) tables() string {
	var out []string
	for t, v := range a.perTable {
		out = append(out, fmt.Sprintf("%s %.1f MB/%d seq scans/%d seq rows/%d idx rows", t, float64(v[0])*8/1024, v[1], v[2], v[3]))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

func (a pgStats) String() string {
	return fmt.Sprintf("PG %.0f MB touched (%.0f MB from disk/OS), %d rows seq-read, %d rows via index",
		float64(a.blocks)*8/1024, float64(a.read)*8/1024, a.seqTup, a.idxTup)
}

// readPGStats sums the schema's table counters. The pool's connections are closed first:
// a backend reports its counters when it exits (otherwise only every few seconds when idle).
func readPGStats(b *testing.B, s *testenv.Schema) pgStats {
	ctx := context.Background()
	s.Pool.Reset()
	time.Sleep(500 * time.Millisecond) // let the closed backends exit and flush their counters
	st := pgStats{perTable: map[string][4]int64{}}
	rows, err := s.Pool.Query(ctx, `SELECT io.relname,
			coalesce(io.heap_blks_hit, 0) + coalesce(io.heap_blks_read, 0) + coalesce(io.idx_blks_hit, 0) + coalesce(io.idx_blks_read, 0)
				+ coalesce(io.toast_blks_hit, 0) + coalesce(io.toast_blks_read, 0),
			coalesce(io.heap_blks_read, 0) + coalesce(io.idx_blks_read, 0),
			coalesce(t.seq_scan, 0), coalesce(t.seq_tup_read, 0), coalesce(t.idx_tup_fetch, 0)
		FROM pg_statio_user_tables io JOIN pg_stat_user_tables t USING (relid) WHERE io.schemaname = $1`, s.Name)
	require.NoError(b, err)
	defer rows.Close()
	for rows.Next() {
		var name string
		var blocks, read, seqScans, seqTup, idxTup int64
		require.NoError(b, rows.Scan(&name, &blocks, &read, &seqScans, &seqTup, &idxTup))
		st.blocks += blocks
		st.read += read
		st.seqTup += seqTup
		st.idxTup += idxTup
		st.perTable[name] = [4]int64{blocks, seqScans, seqTup, idxTup}
	}
	require.NoError(b, rows.Err())
	return st
}

// envSize reads a size from env, with def when unset.
func envSize(b *testing.B, name string, def int64) int64 {
	return int64(testenv.EnvInt(b, name, int(def)))
}
