package archive

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/testenv"
	"github.com/chatplat/job-service/ledger"
)

// BenchmarkArchivePartition exports, verifies and drops one chat_messages month of N rows
// (ARCHIVE_BENCH_ROWS, comma-separated, default 500000,5000000) and reports the time, the
// process's peak RSS during the move (VmHWM, reset before it), the bytes stored in S3 and
// the raw CSV bytes. Equal peak RSS at both sizes shows memory bound by part size, not by
// the partition. `make bench-archive` runs it.
func BenchmarkArchivePartition(b *testing.B) {
	sizes := []int{500000, 5000000}
	if raw := os.Getenv("ARCHIVE_BENCH_ROWS"); raw != "" {
		sizes = nil
		for _, f := range strings.Split(raw, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			require.NoError(b, err, "ARCHIVE_BENCH_ROWS")
			sizes = append(sizes, n)
		}
	}
	for _, rows := range sizes {
		b.Run(fmt.Sprintf("rows=%d", rows), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				s := testenv.NewSchema(b)
				s.ApplyChatSchema(b)
				require.NoError(b, ledger.Migrate(context.Background(), s.Pool))
				bk := testenv.NewBucket(b)
				e := &env{schema: s, bucket: bk, log: testenv.Logger(b), cfg: Config{Bucket: bk.Name, Prefix: "bench",
					Tables: []TableConfig{{"chat_messages", 12}}}}
				e.log = discardLogger()
				start := time.Now()
				part := e.month(b, "chat_messages", month(2025, 4), rows)
				_, err := s.Pool.Exec(context.Background(), "VACUUM ANALYZE "+part)
				require.NoError(b, err)
				b.Logf("filled %s with %d rows in %s", part, rows, time.Since(start).Round(time.Millisecond))
				a := e.archiver(b, nil, nil)
				runtime.GC()
				resetPeakRSS(b)
				b.StartTimer()

				t0 := time.Now()
				res, err := a.Run(context.Background(), Options{})
				elapsed := time.Since(t0)

				b.StopTimer()
				require.NoError(b, err)
				require.Equal(b, "archived", res.Items[0].Action)
				en := e.entry(b, "chat_messages", part)
				require.EqualValues(b, rows, *en.Rows)
				peak := peakRSS(b)
				b.ReportMetric(elapsed.Seconds(), "s/move")
				b.ReportMetric(float64(peak)/(1<<20), "peakRSS_MiB")
				b.ReportMetric(float64(*en.Bytes)/(1<<20), "s3_MiB")
				b.ReportMetric(float64(*en.RawBytes)/(1<<20), "csv_MiB")
				b.ReportMetric(float64(rows)/elapsed.Seconds(), "rows/s")
				b.Logf("rows=%d move=%s peakRSS=%.1fMiB s3=%.1fMiB csv=%.1fMiB", rows, elapsed.Round(time.Millisecond),
					float64(peak)/(1<<20), float64(*en.Bytes)/(1<<20), float64(*en.RawBytes)/(1<<20))
			}
		})
	}
}

// resetPeakRSS sets VmHWM back to the current RSS (Linux: "5" into clear_refs).
func resetPeakRSS(b *testing.B) {
	require.NoError(b, os.WriteFile("/proc/self/clear_refs", []byte("5"), 0))
}

// peakRSS reads VmHWM in bytes.
func peakRSS(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	require.NoError(b, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			require.NoError(b, err)
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
