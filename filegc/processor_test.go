package filegc

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestProcessSortsABatch(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC)
	ev := func(id int64, at time.Time) []byte {
		b, err := json.Marshal(Event{FileID: id, FileHash: "h", Bucket: "bkt", ObjectPath: "p", EventTime: at})
		require.NoError(t, err)
		return b
	}
	cfg := Config{Topic: "F", Tag: "REF_ZERO"}.WithDefaults() // grace 10m
	pub, reaper, rec := &fakePub{}, &fakeReaper{}, &fakeRecorder{}
	p := NewProcessor(cfg, reaper, pub, rec, "n1", nil, func() time.Time { return now }, slog.New(slog.NewTextHandler(io.Discard, nil)))

	v := p.Process(t.Context(), []Delivery{
		{MsgID: "due", Body: ev(1, now.Add(-11*time.Minute))},
		{MsgID: "young", Body: ev(2, now.Add(-time.Minute))},
		{MsgID: "bad", Body: []byte(`{"file_id":3}`)},
	})
	require.False(t, v.Retry)
	require.Len(t, rec.rejected, 1)
	require.Equal(t, "bad", rec.rejected[0].MsgID)
	require.Equal(t, JobName, rec.rejected[0].Job)
	require.Len(t, reaper.got, 1)
	require.Equal(t, int64(1), reaper.got[0][0].ID)
	require.Equal(t, now.Add(-11*time.Minute), reaper.got[0][0].NotAfter, "rows touched after the event are left")
	require.Len(t, pub.sent, 1, "the young event waits in the broker")
	require.Equal(t, now.Add(9*time.Minute), pub.sent[0].at)

	// The deferred message comes back when due: its event is reaped.
	later := now.Add(9 * time.Minute)
	p.now = func() time.Time { return later }
	v = p.Process(t.Context(), []Delivery{{MsgID: "d", Tag: "REF_ZERO_DEFERRED", Body: pub.sent[0].body}})
	require.False(t, v.Retry)
	require.Len(t, reaper.got, 2)
	require.Equal(t, int64(2), reaper.got[1][0].ID)

	// A database or S3 error asks for the batch again, with backoff, and is recorded.
	reaper.err = errors.New("connection refused")
	v = p.Process(t.Context(), []Delivery{{MsgID: "x", Body: ev(4, now.Add(-time.Hour)), ReconsumeTimes: 2}})
	require.True(t, v.Retry)
	require.Equal(t, 4*time.Second, v.After)
	require.Len(t, rec.failures, 1)
}
