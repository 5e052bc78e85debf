package job

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNewManualRun(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC)
	known := func(k string) bool { return k == "pg_partition" }
	mr, err := NewManualRun("pg_partition", json.RawMessage(`{"premake":6}`), 3, "alice", now, known)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(mr.RunKey, "manual:20261126T210000Z-"), mr.RunKey)
	require.Len(t, mr.Envelopes, 3)
	for i, e := range mr.Envelopes {
		require.Equal(t, Shard{Index: i, Total: 3}, e.Shard)
		require.Equal(t, TriggerManual, e.Trigger)
		require.Equal(t, mr.RunKey, e.RunKey)
		require.Equal(t, now, e.ScheduledAt)
		require.Equal(t, "alice", e.RequestedBy)
	}
	other, err := NewManualRun("pg_partition", nil, 0, "", now, known)
	require.NoError(t, err)
	require.NotEqual(t, mr.RunKey, other.RunKey, "run keys are fresh")
	require.Equal(t, json.RawMessage("{}"), other.Envelopes[0].Params)

	_, err = NewManualRun("nope", nil, 1, "", now, known)
	require.True(t, IsReject(err))
	_, err = NewManualRun("pg_partition", json.RawMessage(`[1]`), 1, "", now, known)
	require.ErrorContains(t, err, "params")
	_, err = NewManualRun("pg_partition", nil, MaxShards+1, "", now, known)
	require.ErrorContains(t, err, "shard.total")
}
