package mq

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDelayLevelFor(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]int{
		0: 1, time.Second: 1, 2 * time.Second: 2, 5 * time.Second: 2, 6 * time.Second: 3,
		time.Minute: 5, 90 * time.Minute: 18, 10 * time.Hour: 18,
	} {
		require.Equal(t, want, DelayLevelFor(d), d.String())
	}
}
