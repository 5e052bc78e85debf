package job

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNextFiresInJobZone(t *testing.T) {
	t.Parallel()
	s := Spec{Schedule: "0 30 2 * * *", TimeZone: "Asia/Shanghai"}.WithDefaults()
	now := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC) // 04:00 on Dec 2 in Shanghai
	got := s.NextFires(now, 5)
	require.Len(t, got, 5)
	for i, at := range got {
		require.Equal(t, "Asia/Shanghai", at.Location().String())
		require.Equal(t, 2, at.Hour())
		require.Equal(t, 30, at.Minute())
		require.Equal(t, 3+i, at.Day(), "fire %d", i)
		require.True(t, at.After(now))
	}
	first, ok := s.NextFire(now)
	require.True(t, ok)
	require.True(t, first.Equal(got[0]))
}

func TestNextFiresOfUnscheduledJob(t *testing.T) {
	t.Parallel()
	require.Nil(t, Spec{TimeZone: "UTC"}.NextFires(time.Now(), 5))
	off := false
	require.Nil(t, Spec{Schedule: "@every 1m", TimeZone: "UTC", Enabled: &off}.NextFires(time.Now(), 5))
	require.Nil(t, Spec{Schedule: "@every 1m", TimeZone: "UTC"}.NextFires(time.Now(), 0))
}
