package filegc

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
)

func TestDecodeEvent(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC)
	good := `{"file_id":42,"file_hash":"abc","bucket":"chat-files","object_path":"a/b.png","ref_count":0,"event_time":"2026-11-26T20:59:00Z"}`
	ev, err := Decode([]byte(good), now, 5*time.Minute)
	require.NoError(t, err)
	require.Equal(t, Event{FileID: 42, FileHash: "abc", Bucket: "chat-files", ObjectPath: "a/b.png",
		EventTime: time.Date(2026, 11, 26, 20, 59, 0, 0, time.UTC)}, ev)

	for field, body := range map[string]string{
		"":            `{not json`,
		"file_id":     strings.Replace(good, `"file_id":42`, `"file_id":0`, 1),
		"file_hash":   strings.Replace(good, `"file_hash":"abc"`, `"file_hash":""`, 1),
		"bucket":      strings.Replace(good, `"bucket":"chat-files"`, `"bucket":"Bad_Bucket"`, 1),
		"object_path": strings.Replace(good, `"object_path":"a/b.png"`, `"object_path":""`, 1),
		"ref_count":   strings.Replace(good, `"ref_count":0`, `"ref_count":2`, 1),
		"event_time":  strings.Replace(good, `2026-11-26T20:59:00Z`, `2026-11-26T22:00:00Z`, 1),
	} {
		_, err := Decode([]byte(body), now, 5*time.Minute)
		var rej *job.RejectError
		require.ErrorAs(t, err, &rej, body)
		require.Equal(t, field, rej.Field, body)
	}
	_, err = Decode([]byte(strings.Replace(good, `{`, `{"extra":1,`, 1)), now, time.Minute)
	require.ErrorContains(t, err, "unknown field")
	_, err = Decode(nil, now, time.Minute)
	require.Error(t, err)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	c := Config{}.WithDefaults()
	require.NoError(t, c.Validate())
	require.Equal(t, 10*time.Minute, c.Grace)
	require.Equal(t, DefaultGroup, c.Group)
	for key, mut := range map[string]func(*Config){
		"grace":      func(c *Config) { c.Grace = 100 * time.Millisecond },
		"batch_size": func(c *Config) { c.BatchSize = 5000 },
		"group":      func(c *Config) { c.Group = "" },
	} {
		bad := c
		mut(&bad)
		require.ErrorContains(t, bad.Validate(), key)
	}
}

func TestDeferredGroupsByDueWindow(t *testing.T) {
	t.Parallel()
	pub := &fakePub{}
	p := &Processor{cfg: Config{Topic: "F", Tag: "REF_ZERO"}, pub: pub}
	base := time.Now().Add(time.Minute)
	later := []deferred{
		{due: base.Add(300 * time.Millisecond), body: []byte(`{"a":2}`)},
		{due: base, body: []byte(`{"a":1}`)},
		{due: base.Add(5 * time.Second), body: []byte(`{"a":3}`)},
	}
	require.NoError(t, p.deferAll(t.Context(), later))
	require.Len(t, pub.sent, 2)
	require.Equal(t, "REF_ZERO_DEFERRED", pub.sent[0].tag)
	require.Equal(t, base.Add(300*time.Millisecond), pub.sent[0].at, "delivered at the latest due of its group, never earlier")
	bodies, err := decodeDeferred(pub.sent[0].body)
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte(`{"a":1}`), []byte(`{"a":2}`)}, bodies)
	require.Equal(t, base.Add(5*time.Second), pub.sent[1].at)
}
