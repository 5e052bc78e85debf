package job

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
)

// Handler runs one kind of job with arguments of type T. T is decoded from the message's
// params (unknown fields refused) and, when *T has a Validate() error method, validated
// before the handler sees it.
type Handler[T any] interface {
	Kind() string
	Run(ctx context.Context, run *Run[T]) (any, error)
}

type validator interface{ Validate() error }

// Prepared is a message whose args decoded and validated: all that is left is to run it.
type Prepared func(ctx context.Context, runID int64, attempt int) (any, error)

// DecodeArgs decodes params as the arguments of a run, the way the consumer does before a
// handler sees them: unknown fields are refused, {} or nothing is the zero T, and *T's
// Validate, if it has one, is called. Every failure is a *RejectError on "params".
func DecodeArgs[T any](params json.RawMessage) (T, error) {
	var args T
	if len(params) > 0 && !bytes.Equal(bytes.TrimSpace(params), []byte("{}")) {
		dec := json.NewDecoder(bytes.NewReader(params))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&args); err != nil {
			return args, &RejectError{Field: "params", Reason: err.Error()}
		}
	}
	if v, ok := any(&args).(validator); ok {
		if err := v.Validate(); err != nil {
			return args, &RejectError{Field: "params", Reason: err.Error()}
		}
	}
	return args, nil
}

type entry interface {
	prepare(env Envelope) (Prepared, error)
}

type typed[T any] struct{ h Handler[T] }

func (t typed[T]) prepare(env Envelope) (Prepared, error) {
	args, err := DecodeArgs[T](env.Params)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, runID int64, attempt int) (any, error) {
		return t.h.Run(ctx, &Run[T]{Envelope: env, Args: args, Attempt: attempt, RunID: runID})
	}, nil
}

// Registry maps job kinds to handlers. Build it at start; it is read-only afterwards.
type Registry struct {
	entries map[string]entry
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{entries: map[string]entry{}} }

// Register adds h under its kind. Registering a kind twice is a wiring bug and panics at start.
func Register[T any](r *Registry, h Handler[T]) {
	kind := h.Kind()
	if _, dup := r.entries[kind]; dup {
		panic(fmt.Sprintf("job: kind %q registered twice", kind))
	}
	r.entries[kind] = typed[T]{h: h}
}

// Known reports whether kind has a handler.
func (r *Registry) Known(kind string) bool {
	_, ok := r.entries[kind]
	return ok
}

// Kinds returns the registered kinds, sorted.
func (r *Registry) Kinds() []string {
	out := make([]string, 0, len(r.entries))
	for k := range r.entries {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Prepare decodes and validates env's params for its handler. A *RejectError means the
// message can never run.
func (r *Registry) Prepare(env Envelope) (Prepared, error) {
	e, ok := r.entries[env.Job]
	if !ok {
		return nil, &RejectError{Field: "job", Reason: fmt.Sprintf("unknown job %q", env.Job)}
	}
	return e.prepare(env)
}
