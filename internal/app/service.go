package app

import (
	"context"
	"errors"
	"sync"
)

// Service is what a node starts and stops: the consumers, the ticker, the notifier, the
// heartbeat. Start returns once the service runs (its work outlives ctx); Stop ends it within
// ctx and is safe to call more than once.
type Service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// stopAll stops services in reverse order of start and joins their errors.
func stopAll(ctx context.Context, services []Service) error {
	var errs []error
	for i := len(services) - 1; i >= 0; i-- {
		errs = append(errs, services[i].Stop(ctx))
	}
	return errors.Join(errs...)
}

// together starts its services in order and stops them at the same time, within one deadline:
// the file GC drains its batches while the job runs drain, neither waiting for the other.
type together []Service

func (g together) Start(ctx context.Context) error {
	for i, s := range g {
		if err := s.Start(ctx); err != nil {
			// The caller only stops what started whole; undo the part of g that did.
			_ = stopAll(context.WithoutCancel(ctx), g[:i])
			return err
		}
	}
	return nil
}

func (g together) Stop(ctx context.Context) error {
	errs := make([]error, len(g))
	var wg sync.WaitGroup
	for i, s := range g {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Stop(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// funcService is a background loop as a Service: run until its context ends.
type funcService struct {
	run  func(ctx context.Context)
	stop context.CancelFunc
	done chan struct{}
	once sync.Once
}

func (f *funcService) Start(ctx context.Context) error {
	ctx, f.stop = context.WithCancel(context.WithoutCancel(ctx))
	f.done = make(chan struct{})
	go func() {
		defer close(f.done)
		f.run(ctx)
	}()
	return nil
}

func (f *funcService) Stop(context.Context) error {
	f.once.Do(func() {
		if f.stop != nil {
			f.stop()
			<-f.done
		}
	})
	return nil
}
