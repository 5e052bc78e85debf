package job

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"
)

// ManualRun is a forced run: the envelopes of all its shards, which share one run key.
type ManualRun struct {
	RunKey    string
	Envelopes []Envelope
}

// NewManualRun builds the messages of a forced run of jobName, the same for jobctl, the admin
// API and the console: trigger manual, scheduled now, a fresh run key
// "manual:<UTC time>-<random>", one envelope per shard. Empty params mean {}. The envelopes are
// validated (known, when not nil, says whether the job kind exists), so a bad request fails
// here rather than as a rejected message.
func NewManualRun(jobName string, params json.RawMessage, shards int, requestedBy string, now time.Time,
	known func(string) bool) (ManualRun, error) {
	now = now.UTC()
	if len(params) == 0 {
		params = json.RawMessage("{}")
	}
	if shards == 0 {
		shards = 1
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	runKey := "manual:" + now.Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
	mr := ManualRun{RunKey: runKey, Envelopes: make([]Envelope, 0, shards)}
	for i := range shards {
		env := Envelope{Job: jobName, RunKey: runKey, Trigger: TriggerManual, ScheduledAt: now,
			Shard: Shard{Index: i, Total: shards}, Params: params, RequestedBy: requestedBy}
		if err := env.Validate(now, known); err != nil {
			return ManualRun{}, err
		}
		mr.Envelopes = append(mr.Envelopes, env)
	}
	return mr, nil
}
