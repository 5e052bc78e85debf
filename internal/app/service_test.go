package app

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// svcRecorder is a Service that notes its starts and stops; a stop can wait for a gate.
type svcRecorder struct {
	name     string
	log      *[]string
	mu       *sync.Mutex
	startErr error
	gate     chan struct{} // when set, Stop waits for it (or ctx)
	stopping chan struct{} // closed when Stop begins
}

func (r *svcRecorder) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*r.log = append(*r.log, s)
}

func (r *svcRecorder) Start(context.Context) error {
	if r.startErr != nil {
		return r.startErr
	}
	r.note("start " + r.name)
	return nil
}

func (r *svcRecorder) Stop(ctx context.Context) error {
	if r.stopping != nil {
		close(r.stopping)
	}
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.note("stop " + r.name)
	return nil
}

func TestStopAllStopsInReverseOrder(t *testing.T) {
	t.Parallel()
	var log []string
	var mu sync.Mutex
	svcs := []Service{&svcRecorder{name: "clock", log: &log, mu: &mu}, &svcRecorder{name: "consumers", log: &log, mu: &mu},
		&svcRecorder{name: "ticker", log: &log, mu: &mu}, &svcRecorder{name: "beat", log: &log, mu: &mu}}
	require.NoError(t, stopAll(context.Background(), svcs))
	require.Equal(t, []string{"stop beat", "stop ticker", "stop consumers", "stop clock"}, log)
}

// The job consumer and the file GC drain at the same time: one does not wait for the other.
func TestTogetherStopsInParallel(t *testing.T) {
	t.Parallel()
	var log []string
	var mu sync.Mutex
	gate := make(chan struct{})
	a := &svcRecorder{name: "jobs", log: &log, mu: &mu, gate: gate, stopping: make(chan struct{})}
	b := &svcRecorder{name: "filegc", log: &log, mu: &mu, gate: gate, stopping: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- together{a, b}.Stop(context.Background()) }()
	for _, r := range []*svcRecorder{a, b} {
		select {
		case <-r.stopping:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s was not being stopped while the other still drained", r.name)
		}
	}
	close(gate)
	require.NoError(t, <-done)
	require.ElementsMatch(t, []string{"stop jobs", "stop filegc"}, log)
}

// A group that fails half-way stops what it started: the node only tracks whole groups.
func TestTogetherUndoesAFailedStart(t *testing.T) {
	t.Parallel()
	var log []string
	var mu sync.Mutex
	boom := errors.New("boom")
	g := together{&svcRecorder{name: "jobs", log: &log, mu: &mu}, &svcRecorder{name: "filegc", log: &log, mu: &mu, startErr: boom}}
	require.ErrorIs(t, g.Start(context.Background()), boom)
	require.Equal(t, []string{"start jobs", "stop jobs"}, log)
}

func TestFuncServiceRunsUntilStopped(t *testing.T) {
	t.Parallel()
	ended := make(chan struct{})
	f := &funcService{run: func(ctx context.Context) { <-ctx.Done(); close(ended) }}
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, f.Start(ctx))
	cancel() // the loop outlives the Start context
	select {
	case <-ended:
		t.Fatal("the loop ended with its Start context")
	default:
	}
	require.NoError(t, f.Stop(context.Background()))
	<-ended
	require.NoError(t, f.Stop(context.Background()), "Stop is idempotent")
}
