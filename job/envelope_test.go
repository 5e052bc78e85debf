package job

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var testNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func known(k string) bool { return k == "pg_partition" || k == "noop" }

func validBody(mod func(m map[string]any)) []byte {
	m := map[string]any{
		"job": "pg_partition", "run_key": "manual:abc", "trigger": "manual",
		"scheduled_at": testNow.Format(time.RFC3339), "shard": map[string]int{"index": 0, "total": 1},
		"params": map[string]any{}, "requested_by": "alice",
	}
	if mod != nil {
		mod(m)
	}
	b, _ := json.Marshal(m)
	return b
}

func TestDecodeAcceptsValidEnvelope(t *testing.T) {
	t.Parallel()
	env, err := Decode(validBody(nil), testNow, known)
	require.NoError(t, err)
	require.Equal(t, "pg_partition", env.Job)
	require.Equal(t, Shard{Index: 0, Total: 1}, env.Shard)
	require.True(t, env.ScheduledAt.Equal(testNow))
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		body  []byte
		field string
	}{
		{"empty", nil, ""},
		{"not json", []byte("{nope"), ""},
		{"array", []byte("[1,2]"), ""},
		{"trailing", append(validBody(nil), []byte(`{"x":1}`)...), ""},
		{"unknown field", validBody(func(m map[string]any) { m["extra"] = 1 }), ""},
		{"missing job", validBody(func(m map[string]any) { delete(m, "job") }), "job"},
		{"unknown job", validBody(func(m map[string]any) { m["job"] = "drop_everything" }), "job"},
		{"bad job name", validBody(func(m map[string]any) { m["job"] = "Robert'); DROP" }), "job"},
		{"job wrong type", validBody(func(m map[string]any) { m["job"] = 42 }), ""},
		{"missing run key", validBody(func(m map[string]any) { m["run_key"] = "" }), "run_key"},
		{"run key spaces", validBody(func(m map[string]any) { m["run_key"] = "a b" }), "run_key"},
		{"run key long", validBody(func(m map[string]any) { m["run_key"] = strings.Repeat("a", 201) }), "run_key"},
		{"bad trigger", validBody(func(m map[string]any) { m["trigger"] = "whenever" }), "trigger"},
		{"missing scheduled_at", validBody(func(m map[string]any) { delete(m, "scheduled_at") }), "scheduled_at"},
		{"bad date", validBody(func(m map[string]any) { m["scheduled_at"] = "yesterday" }), ""},
		{"far future", validBody(func(m map[string]any) { m["scheduled_at"] = "2099-01-01T00:00:00Z" }), "scheduled_at"},
		{"far past", validBody(func(m map[string]any) { m["scheduled_at"] = "1999-01-01T00:00:00Z" }), "scheduled_at"},
		{"negative shard", validBody(func(m map[string]any) { m["shard"] = map[string]int{"index": -1, "total": 2} }), "shard.index"},
		{"shard >= total", validBody(func(m map[string]any) { m["shard"] = map[string]int{"index": 2, "total": 2} }), "shard.index"},
		{"zero total", validBody(func(m map[string]any) { m["shard"] = map[string]int{"index": 0, "total": 0} }), "shard.total"},
		{"huge total", validBody(func(m map[string]any) { m["shard"] = map[string]int{"index": 0, "total": 5000} }), "shard.total"},
		{"params not object", validBody(func(m map[string]any) { m["params"] = []int{1} }), "params"},
		{"params huge", validBody(func(m map[string]any) { m["params"] = map[string]string{"x": strings.Repeat("a", MaxParamsBytes)} }), "params"},
		{"body huge", append([]byte(`{"job":"`), make([]byte, MaxMessageBytes)...), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode(tc.body, testNow, known)
			require.Error(t, err)
			var rej *RejectError
			require.ErrorAs(t, err, &rej)
			require.Equal(t, tc.field, rej.Field, "reason: %s", rej.Reason)
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	t.Parallel()
	env := Envelope{Job: "noop", RunKey: ScheduleRunKey("noop", testNow), Trigger: TriggerSchedule,
		ScheduledAt: time.Now().UTC().Truncate(time.Second), Shard: Shard{Index: 2, Total: 3},
		Params: json.RawMessage(`{"a":1}`)}
	b, err := Encode(env)
	require.NoError(t, err)
	got, err := Decode(b, time.Now(), known)
	require.NoError(t, err)
	require.Equal(t, env.RunKey, got.RunKey)
	require.JSONEq(t, `{"a":1}`, string(got.Params))
	require.Equal(t, "sched:noop@2026-11-26T12:00:00Z", env.RunKey)
}

// FuzzDecode checks that no input crashes the decoder and that whatever it accepts is valid
// and survives a round trip.
func FuzzDecode(f *testing.F) {
	f.Add(validBody(nil))
	f.Add([]byte(`{"job":"noop","run_key":"k","trigger":"event","scheduled_at":"2026-11-26T12:00:00Z","shard":{"index":0,"total":1}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"shard":{"index":-1}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := Decode(body, testNow, known)
		if err != nil {
			require.True(t, IsReject(err), "non-reject error %T: %v", err, err)
			return
		}
		require.NoError(t, env.Validate(testNow, known))
		b, err := json.Marshal(env)
		require.NoError(t, err)
		again, err := Decode(b, testNow, known)
		require.NoError(t, err)
		require.Equal(t, env.RunKey, again.RunKey)
	})
}
