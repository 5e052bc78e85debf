// Package filegc is the near-real-time file GC: it consumes ref_count=0 events from the file
// service on their own topic and consumer group, waits out the grace period with RocketMQ
// timer messages, and removes objects and rows in batches with the same locked re-check as
// the daily file_gc sweep (filereap.Reaper).
package filegc

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/chatplat/job-service/job"
)

// Defaults of the event contract.
const (
	DefaultTopic = "FILE_EVENTS"
	DefaultGroup = "job-service-filegc"
	DefaultTag   = "REF_ZERO"
	// JobName is the ledger job of event batches.
	JobName = "file_gc_event"
)

// Limits on an event's fields.
const (
	maxEventBytes = 8 << 10
	maxHashLen    = 256
	maxPathLen    = 1024
)

// Event is the JSON body of a REF_ZERO message: the file service saw a file's ref_count reach
// zero at EventTime.
type Event struct {
	FileID     int64     `json:"file_id"`
	FileHash   string    `json:"file_hash"`
	Bucket     string    `json:"bucket"`
	ObjectPath string    `json:"object_path"`
	RefCount   int       `json:"ref_count"`
	EventTime  time.Time `json:"event_time"`
}

func reject(field, reason string) error { return &job.RejectError{Field: field, Reason: reason} }

// Decode parses and validates an event body. now bounds event_time: an event from more than
// skew in the future comes from a broken clock and is refused rather than waited for. Every
// failure is a *job.RejectError naming the field.
func Decode(body []byte, now time.Time, skew time.Duration) (Event, error) {
	var ev Event
	if len(body) == 0 {
		return ev, reject("", "empty body")
	}
	if len(body) > maxEventBytes {
		return ev, reject("", "body larger than 8 KiB")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ev); err != nil {
		return ev, reject("", "invalid JSON: "+err.Error())
	}
	if dec.More() {
		return ev, reject("", "trailing data after the JSON object")
	}
	return ev, ev.Validate(now, skew)
}

// Validate checks every field; see Decode.
func (e Event) Validate(now time.Time, skew time.Duration) error {
	switch {
	case e.FileID <= 0:
		return reject("file_id", "missing or not positive")
	case e.FileHash == "":
		return reject("file_hash", "missing")
	case len(e.FileHash) > maxHashLen:
		return reject("file_hash", "longer than 256 characters")
	case !validBucket(e.Bucket):
		return reject("bucket", "not an S3 bucket name (3-63 of a-z 0-9 . -)")
	case e.ObjectPath == "":
		return reject("object_path", "missing")
	case len(e.ObjectPath) > maxPathLen:
		return reject("object_path", "longer than 1024 bytes")
	case e.RefCount != 0:
		return reject("ref_count", "a REF_ZERO event must carry ref_count 0")
	case e.EventTime.IsZero():
		return reject("event_time", "missing")
	case e.EventTime.After(now.Add(skew)):
		return reject("event_time", "more than "+skew.String()+" in the future")
	}
	return nil
}

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Encode validates ev and returns its JSON body (jobctl file-event, tests, the benchmark).
func Encode(ev Event, now time.Time) ([]byte, error) {
	if err := ev.Validate(now, time.Hour); err != nil {
		return nil, err
	}
	return json.Marshal(ev)
}
