package job_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chatplat/job-service/job"
)

// A forced run from Go: the same messages jobctl run and the admin API publish. Publish each
// envelope on the job topic (tag: the job kind, key: the run key), for example with
// mq.Producer.Publish, or let a node do it: POST /api/jobs/{job}/run (see the admin package's
// example).
func ExampleNewManualRun() {
	now := time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC)
	known := func(kind string) bool { return kind == "file_gc" }
	mr, err := job.NewManualRun("file_gc", json.RawMessage(`{"dry_run":true}`), 3, "alice@ops", now, known)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(strings.HasPrefix(mr.RunKey, "manual:20261126T210000Z-"))
	for _, env := range mr.Envelopes {
		fmt.Println(env.Job, env.Trigger, env.Shard.Index, "of", env.Shard.Total, string(env.Params), env.RunKey == mr.RunKey)
	}

	// A job this build does not know is refused before anything is published.
	_, err = job.NewManualRun("file_gcc", nil, 1, "alice@ops", now, known)
	fmt.Println(err)
	// Output:
	// true
	// file_gc manual 0 of 3 {"dry_run":true} true
	// file_gc manual 1 of 3 {"dry_run":true} true
	// file_gc manual 2 of 3 {"dry_run":true} true
	// rejected: job: unknown job "file_gcc"
}

// What the consumer accepts from anyone who publishes on the job topic, and what it records
// as rejected (acknowledged, never retried).
func ExampleDecode() {
	now := time.Date(2026, 11, 26, 21, 0, 0, 0, time.UTC)
	body := []byte(`{"job":"pg_partition","run_key":"manual:ops-1","trigger":"manual",
		"scheduled_at":"2026-11-26T21:00:00Z","shard":{"index":0,"total":1},"params":{"premake":6}}`)
	env, err := job.Decode(body, now, nil)
	fmt.Println(env.Job, env.RunKey, string(env.Params), err)

	for _, bad := range []string{
		`{"job":"pg_partition","run_key":"k","trigger":"manual","scheduled_at":"2026-11-26T21:00:00Z","shard":{"index":0,"total":1},"priority":9}`,
		`{"job":"pg_partition","run_key":"k","trigger":"manual","scheduled_at":"2026-11-26T21:00:00Z","shard":{"index":1,"total":1}}`,
		`{"job":"pg_partition","run_key":"k","trigger":"manual","scheduled_at":"2026-12-26T21:00:00Z","shard":{"index":0,"total":1}}`,
	} {
		_, err := job.Decode([]byte(bad), now, nil)
		fmt.Println(job.IsReject(err), err)
	}
	// Output:
	// pg_partition manual:ops-1 {"premake":6} <nil>
	// true rejected: invalid JSON: json: unknown field "priority"
	// true rejected: shard.index: 1 is outside 0..0
	// true rejected: scheduled_at: 2026-12-26T21:00:00Z is more than 72h0m0s in the future
}

// How a handler says what its failure means. The consumer reads these with errors.As, never
// by the error's text: Retry asks for a later attempt (while attempts remain), Discard fails
// the run at once, anything else is retried with the job's backoff.
func ExampleRetry() {
	errBusy := errors.New("lock timeout on chat_messages")
	for _, err := range []error{
		job.Retry(30*time.Second, errBusy),
		job.Discard("rows in the DEFAULT partition", errors.New("chat_messages: 12 rows for 2026-12")),
		errBusy,
	} {
		after, asked := job.RetryAfter(err)
		fmt.Printf("discard=%v retry_after=%v asked=%v: %v\n", job.IsDiscard(err), after, asked, err)
	}
	// Output:
	// discard=false retry_after=30s asked=true: retry after 30s: lock timeout on chat_messages
	// discard=true retry_after=0s asked=false: rows in the DEFAULT partition: chat_messages: 12 rows for 2026-12
	// discard=false retry_after=0s asked=false: lock timeout on chat_messages
}
