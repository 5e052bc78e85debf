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
	require.Equal(t, 0*ms, c.Offset(), "a single sample is taken, at its low end")
	c.add(clockSample{offset: 30 * ms, rtt: 60 * ms})
	require.Equal(t, 0*ms, c.Offset(), "a slow round trip does not move the offset")
	c.add(clockSample{offset: ms, rtt: ms})
	require.Equal(t, ms/2, c.Offset(), "a faster round trip does")
	// A clock that steps: after clockSamples syncs the old fast sample is gone.
	for range clockSamples {
		c.add(clockSample{offset: time.Second, rtt: 2 * ms})
	}
	require.Equal(t, time.Second-ms, c.Offset(), "only recent samples count")
}

// The database reads its clock anywhere within a sync's round trip: when it read it at the
// very end, the sample's offset is half a round trip ahead of the truth, and a clock that took
// it as is read ahead of the database's, so runs held until their time by it started early
// (the schedule-precision benchmark saw starts before scheduled_at). Whatever the truth within
// the round trip, the clock must not read ahead of it.
func TestClockNeverReadsAheadOfTheDatabase(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	for _, truth := range []time.Duration{-3 * ms, -ms, 0, ms, 3 * ms} {
		c := NewClock(nil, time.Now)
		// The database read its clock at the end of a 6 ms round trip: measured from the
		// midpoint, the sample says truth + 3 ms.
		c.add(clockSample{offset: truth + 3*ms, rtt: 6 * ms})
		require.LessOrEqual(t, c.Offset(), truth, "truth %s", truth)
	}
}
