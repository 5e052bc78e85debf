package archive

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
)

func TestRowHasher(t *testing.T) {
	t.Parallel()
	sum := func(chunks ...string) (int64, string) {
		h := newRowHasher()
		for _, c := range chunks {
			_, _ = h.Write([]byte(c))
		}
		return h.Rows(), h.Checksum()
	}
	header := "id,body\n"
	a, b, c := "1,plain\n", "2,\"two\nlines, \"\"quoted\"\"\"\n", "3,\n"
	n, want := sum(header + a + b + c)
	require.EqualValues(t, 3, n, "a quoted newline does not end a record")

	for name, chunks := range map[string][]string{
		"rows in another order": {header, c, a, b},
		"split mid-record":      {header + a + "2,\"tw", "o\nlines, \"\"quo", "ted\"\"\"\n" + c},
		"byte by byte":          splitBytes(header + a + b + c),
	} {
		n, got := sum(chunks...)
		require.EqualValues(t, 3, n, name)
		require.Equal(t, want, got, name)
	}
	_, other := sum(header + a + b + "3,\"\"\n") // empty string instead of NULL
	require.NotEqual(t, want, other)
	_, dup := sum(header + a + a + b + c)
	require.NotEqual(t, want, dup, "a duplicated row changes the sum")
	n, _ = sum("")
	require.Zero(t, n)
}

func splitBytes(s string) []string {
	out := make([]string, len(s))
	for i := range s {
		out[i] = s[i : i+1]
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		key  string
	}{
		{"bucket", Config{Bucket: "Bad_Bucket"}, "bucket"},
		{"prefix", Config{Prefix: "/x"}, "prefix"},
		{"table", Config{Tables: []TableConfig{{"x; drop", 3}}}, "tables[0].table"},
		{"twice", Config{Tables: []TableConfig{{"a", 3}, {"a", 4}}}, "tables[1].table"},
		{"hot", Config{Tables: []TableConfig{{"a", 0}}}, "tables[0].hot_months"},
		{"cap", Config{MaxPartitions: -1}, "max_partitions"},
		{"part", Config{PartSizeMB: 1}, "part_size_mb"},
		{"level", Config{CompressionLevel: 12}, "compression_level"},
		{"zone", Config{TimeZone: "Mars/Olympus"}, "time_zone"},
	} {
		err := tc.cfg.WithDefaults().Validate()
		require.ErrorContains(t, err, tc.key, tc.name)
	}
	require.NoError(t, Config{}.WithDefaults().Validate())
}

func TestConfigCheckSpecKeepsOneMover(t *testing.T) {
	t.Parallel()
	c := Config{}.WithDefaults()
	require.NoError(t, c.CheckSpec(job.Spec{}.WithDefaults()))
	require.ErrorContains(t, c.CheckSpec(job.Spec{Overlap: job.OverlapAllow}.WithDefaults()), "overlap")
	require.ErrorContains(t, c.CheckSpec(job.Spec{Shards: 2}.WithDefaults()), "shards")
}

func TestAllRefused(t *testing.T) {
	t.Parallel()
	refused := fmt.Errorf("t: %w", ErrRefused)
	require.False(t, AllRefused(nil))
	require.True(t, AllRefused(refused))
	require.True(t, AllRefused(errors.Join(refused, fmt.Errorf("p: %w", errors.Join(refused)))))
	require.False(t, AllRefused(errors.Join(refused, errors.New("s3 down"))), "a transient failure is worth a retry")
}

func TestParseBound(t *testing.T) {
	t.Parallel()
	sh, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	for _, tc := range []struct {
		keyType, lit string
		loc          *time.Location
		want         time.Time
	}{
		{"timestamp with time zone", "2025-05-01 00:00:00+00", time.UTC, time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)},
		{"timestamp with time zone", "2025-04-30 16:00:00-08", time.UTC, time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)},
		{"timestamp with time zone", "2025-05-01 05:30:00+05:30", time.UTC, time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)},
		{"timestamp without time zone", "2025-05-01 00:00:00", sh, time.Date(2025, 5, 1, 0, 0, 0, 0, sh)},
		{"date", "2025-05-01", sh, time.Date(2025, 5, 1, 0, 0, 0, 0, sh)},
	} {
		got, err := parseBound(tc.keyType, tc.lit, tc.loc)
		require.NoError(t, err, tc.lit)
		require.True(t, tc.want.Equal(got), "%s: %s", tc.lit, got)
	}
	_, err = parseBound("date", "infinity", time.UTC)
	require.Error(t, err)
	require.Nil(t, rangeBound.FindStringSubmatch("FOR VALUES FROM (MINVALUE) TO ('2025-01-01 00:00:00+00')"), "unbounded ranges are not archived")
}
