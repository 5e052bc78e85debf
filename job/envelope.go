package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Trigger says why a run was requested.
type Trigger string

// The triggers a message may carry.
const (
	TriggerSchedule Trigger = "schedule" // published ahead of time by the ticker
	TriggerManual   Trigger = "manual"   // forced by an operator (jobctl, the admin API, any producer)
	TriggerEvent    Trigger = "event"    // caused by an event from another service
	TriggerRecovery Trigger = "recovery" // republished by the ticker for a run whose node vanished
)

// Limits enforced on every decoded envelope. They keep a hostile or broken producer from
// making a node allocate without bound or schedule runs decades away.
const (
	MaxMessageBytes = 256 << 10
	MaxParamsBytes  = 64 << 10
	MaxShards       = 1024
	MaxRunKeyLen    = 200
	MaxRequestedBy  = 200
	// MaxFuture bounds how far ahead scheduled_at may be: RocketMQ's timer wheel holds
	// three days by default (timerMaxDelaySec=259200).
	MaxFuture = 72 * time.Hour
	// MaxPast bounds how stale a message may be before it is rejected rather than run.
	MaxPast = 31 * 24 * time.Hour
)

var (
	jobNamePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	runKeyPattern  = regexp.MustCompile(`^[A-Za-z0-9_.:@+\-/]+$`)
)

// Shard places one message of a run among the run's shard messages.
type Shard struct {
	Index int `json:"index"`
	Total int `json:"total"`
}

// Envelope is the JSON body of every message on the job topic. The message's tag is the job
// kind and its key is the run key, so the RocketMQ dashboard can find a run's messages.
type Envelope struct {
	Job         string          `json:"job"`
	RunKey      string          `json:"run_key"`
	Trigger     Trigger         `json:"trigger"`
	ScheduledAt time.Time       `json:"scheduled_at"`
	Shard       Shard           `json:"shard"`
	Params      json.RawMessage `json:"params,omitempty"`
	RequestedBy string          `json:"requested_by,omitempty"`
}

// RejectError is returned by Decode for a message that can never be run. The consumer
// records it as rejected and acknowledges it, so it does not loop.
type RejectError struct {
	Field  string
	Reason string
}

func (e *RejectError) Error() string {
	if e.Field == "" {
		return "rejected: " + e.Reason
	}
	return fmt.Sprintf("rejected: %s: %s", e.Field, e.Reason)
}

func reject(field, format string, args ...any) error {
	return &RejectError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// IsReject reports whether err says a message can never be run.
func IsReject(err error) bool {
	var r *RejectError
	return errors.As(err, &r)
}

// ScheduleRunKey is the run key of a scheduled occurrence: the same job and fire time always
// give the same key, which is what makes re-publishing by a new leader harmless.
func ScheduleRunKey(jobName string, at time.Time) string {
	return "sched:" + jobName + "@" + at.UTC().Format(time.RFC3339)
}

// Encode validates env and returns its JSON body.
func Encode(env Envelope) ([]byte, error) {
	if len(env.Params) == 0 {
		env.Params = json.RawMessage("{}")
	}
	if err := env.Validate(time.Now(), nil); err != nil {
		return nil, err
	}
	return json.Marshal(env)
}

// Decode parses and validates a message body. now is the consumer's clock (for the bounds on
// scheduled_at) and known, when not nil, says whether a job kind exists. Every failure is a
// *RejectError naming the field.
func Decode(body []byte, now time.Time, known func(string) bool) (Envelope, error) {
	var env Envelope
	if len(body) == 0 {
		return env, reject("", "empty body")
	}
	if len(body) > MaxMessageBytes {
		return env, reject("", "body is %d bytes, more than %d", len(body), MaxMessageBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return env, reject("", "invalid JSON: %v", err)
	}
	if dec.More() {
		return env, reject("", "trailing data after the JSON object")
	}
	if len(env.Params) == 0 || string(env.Params) == "null" {
		env.Params = json.RawMessage("{}")
	}
	return env, env.Validate(now, known)
}

// Validate checks every field; see Decode.
func (e *Envelope) Validate(now time.Time, known func(string) bool) error {
	switch {
	case e.Job == "":
		return reject("job", "missing")
	case !jobNamePattern.MatchString(e.Job):
		return reject("job", "%q is not a job name (lower-case letters, digits, _)", e.Job)
	case known != nil && !known(e.Job):
		return reject("job", "unknown job %q", e.Job)
	}
	switch {
	case e.RunKey == "":
		return reject("run_key", "missing")
	case len(e.RunKey) > MaxRunKeyLen:
		return reject("run_key", "longer than %d characters", MaxRunKeyLen)
	case !runKeyPattern.MatchString(e.RunKey):
		return reject("run_key", "%q has characters outside [A-Za-z0-9_.:@+-/]", e.RunKey)
	}
	switch e.Trigger {
	case TriggerSchedule, TriggerManual, TriggerEvent, TriggerRecovery:
	case "":
		return reject("trigger", "missing")
	default:
		return reject("trigger", "%q is not one of schedule, manual, event, recovery", e.Trigger)
	}
	switch {
	case e.ScheduledAt.IsZero():
		return reject("scheduled_at", "missing")
	case e.ScheduledAt.After(now.Add(MaxFuture)):
		return reject("scheduled_at", "%s is more than %s in the future", e.ScheduledAt.Format(time.RFC3339), MaxFuture)
	case e.ScheduledAt.Before(now.Add(-MaxPast)):
		return reject("scheduled_at", "%s is more than %s in the past", e.ScheduledAt.Format(time.RFC3339), MaxPast)
	}
	switch {
	case e.Shard.Total < 1 || e.Shard.Total > MaxShards:
		return reject("shard.total", "%d is outside 1..%d", e.Shard.Total, MaxShards)
	case e.Shard.Index < 0 || e.Shard.Index >= e.Shard.Total:
		return reject("shard.index", "%d is outside 0..%d", e.Shard.Index, e.Shard.Total-1)
	}
	if len(e.Params) > MaxParamsBytes {
		return reject("params", "%d bytes, more than %d", len(e.Params), MaxParamsBytes)
	}
	if len(e.Params) > 0 {
		trimmed := bytes.TrimSpace(e.Params)
		if len(trimmed) == 0 || trimmed[0] != '{' || !json.Valid(trimmed) {
			return reject("params", "must be a JSON object")
		}
	}
	if len(e.RequestedBy) > MaxRequestedBy {
		return reject("requested_by", "longer than %d characters", MaxRequestedBy)
	}
	return nil
}
