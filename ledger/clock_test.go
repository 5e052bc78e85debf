package ledger

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestClockTakesTheOffsetOfTheShortestRecentRoundTrip(t *testing.T) {
	t.Parallel()
	c := NewClock(nil, time.Now)
	ms := time.Millisecond
	c.add(clockSample{offset: 2 * ms, rtt: 4 * ms})
	require.Equal(t, 2*ms, c.Offset(), "a single sample is taken as is")
	c.add(clockSample{offset: 30 * ms, rtt: 60 * ms})
	require.Equal(t, 2*ms, c.Offset(), "a slow round trip does not move the offset")
	c.add(clockSample{offset: ms, rtt: ms})
	require.Equal(t, ms, c.Offset(), "a faster round trip does")
	// A clock that steps: after clockSamples syncs the old fast sample is gone.
	for range clockSamples {
		c.add(clockSample{offset: time.Second, rtt: 3 * ms})
	}
	require.Equal(t, time.Second, c.Offset(), "only recent samples count")
}
