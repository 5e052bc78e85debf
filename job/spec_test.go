package job

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSpecScheduleWithSecondsAndZone(t *testing.T) {
	t.Parallel()
	s := Spec{Schedule: "0 0 3 * * *", TimeZone: "Asia/Shanghai"}.WithDefaults()
	require.NoError(t, s.Validate())
	sched, err := s.ParseSchedule()
	require.NoError(t, err)
	next := sched.Next(time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC))
	// 03:00 in Shanghai is 19:00 UTC the day before the local date.
	require.Equal(t, time.Date(2026, 11, 26, 19, 0, 0, 0, time.UTC), next.UTC())

	five := Spec{Schedule: "*/10 * * * *"}.WithDefaults()
	require.NoError(t, five.Validate())
}

func TestSpecValidateNamesKey(t *testing.T) {
	t.Parallel()
	cases := map[string]Spec{
		"schedule":     {Schedule: "every tuesday"},
		"time_zone":    {Schedule: "@daily", TimeZone: "Mars/Olympus"},
		"shards":       {Shards: -1},
		"max_attempts": {MaxAttempts: 99},
		"misfire":      {Misfire: "later"},
		"overlap":      {Overlap: "maybe"},
		"timeout":      {Timeout: time.Millisecond},
	}
	for key, s := range cases {
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			err := s.WithDefaults().Validate()
			require.Error(t, err)
			require.Contains(t, err.Error(), key)
		})
	}
}
