// Package peerjobs holds the long job of the takeover benchmark for River and Asynq, shared by
// the benchmark (the surviving worker) and cmd/peerworker (the worker that is killed).
package peerjobs

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/riverqueue/river"
)

// LongKind names the long job in River and its task type in Asynq.
const LongKind = "peers_long"

// LongArgs are the long job's parameters.
type LongArgs struct {
	SleepMS int `json:"sleep_ms"`
}

// Kind names the job for River.
func (LongArgs) Kind() string { return LongKind }

// LongWorker sleeps SleepMS after telling OnStart that an attempt began.
type LongWorker struct {
	river.WorkerDefaults[LongArgs]
	OnStart func(id string, attempt int)
}

// Work tells OnStart, then sleeps until done or cancelled.
func (w *LongWorker) Work(ctx context.Context, j *river.Job[LongArgs]) error {
	w.OnStart(strconv.FormatInt(j.ID, 10), j.Attempt)
	return sleep(ctx, j.Args.SleepMS)
}

// AsynqTask is the long job as an Asynq task.
func AsynqTask(sleepMS int) (*asynq.Task, error) {
	body, err := json.Marshal(LongArgs{SleepMS: sleepMS})
	if err != nil {
		return nil, err
	}
	return asynq.NewTask(LongKind, body), nil
}

// AsynqHandler runs the long task: OnStart, then the sleep.
func AsynqHandler(onStart func(id string, attempt int)) asynq.HandlerFunc {
	return func(ctx context.Context, t *asynq.Task) error {
		var a LongArgs
		if err := json.Unmarshal(t.Payload(), &a); err != nil {
			return fmt.Errorf("decode %s: %w", LongKind, err)
		}
		id, _ := asynq.GetTaskID(ctx)
		retried, _ := asynq.GetRetryCount(ctx)
		onStart(id, retried+1)
		return sleep(ctx, a.SleepMS)
	}
}

func sleep(ctx context.Context, ms int) error {
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(time.Duration(ms) * time.Millisecond):
		return nil
	}
}
