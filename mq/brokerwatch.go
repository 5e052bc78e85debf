package mq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// BrokerWatch tells the ticker's repair pass which brokers have left the cluster, so the
// scheduled runs whose timer messages they hold are published again at once rather than after
// overdue_after. It reads the routes of the job topic and of the schedule topic (where the
// ticker's timer messages are); a broker is gone when neither route lists it
// with a master (it shut down, or the name server saw its connection close: a kill -9 on a
// live host), or when its master has not answered a request for goneAfter (a frozen process
// or a dead host: the name server keeps such a broker for two minutes).
type BrokerWatch struct {
	nameServers []string
	topics      []string
	goneAfter   time.Duration
	probe       time.Duration // how long one request may take
	now         func() time.Time
	rpc         remoting

	mu      sync.Mutex
	silent  map[string]time.Time // broker name → first unanswered probe of the current streak
	avoided map[string]bool      // routed brokers that did not answer the last probe
}

// NewBrokerWatch watches the brokers of cfg.Topic and cfg.ScheduleTopic through
// cfg.NameServers.
func NewBrokerWatch(cfg Config, goneAfter time.Duration, now func() time.Time) *BrokerWatch {
	topics := []string{cfg.Topic}
	if cfg.ScheduleTopic != "" && cfg.ScheduleTopic != cfg.Topic {
		topics = append(topics, cfg.ScheduleTopic)
	}
	return &BrokerWatch{nameServers: cfg.NameServers, topics: topics, goneAfter: goneAfter,
		probe: min(3*time.Second, max(goneAfter/4, 200*time.Millisecond)), now: now, silent: map[string]time.Time{}}
}

// Gone returns which of brokers are gone (sorted). It also probes every broker in the route,
// so call it every repair pass, with or without brokers to ask about: an unreachable streak
// only counts from the first probe that saw it. It returns none when no broker of the route is
// reachable: the runs have nowhere better to go, and they wait for a broker to come back. An
// error means the route could not be read from any name server; nothing is then known gone.
func (w *BrokerWatch) Gone(ctx context.Context, brokers []string) ([]string, error) {
	route, err := w.route(ctx)
	if err != nil {
		return nil, err
	}
	asked := w.now() // a streak starts when the unanswered probe was sent
	reachable := w.probeAll(ctx, route)
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	live := 0
	for name, addr := range route {
		if addr == "" {
			continue
		}
		if reachable[name] {
			delete(w.silent, name)
			live++
		} else if _, ok := w.silent[name]; !ok {
			w.silent[name] = asked
		}
	}
	for name := range w.silent {
		if _, ok := route[name]; !ok {
			delete(w.silent, name) // left the route: gone by that rule; a streak restarts if it returns
		}
	}
	w.avoided = map[string]bool{}
	if live == 0 {
		return nil, nil
	}
	for name := range w.silent {
		w.avoided[name] = true
	}
	var gone []string
	for _, b := range brokers {
		addr, routed := route[b]
		since, silent := w.silent[b]
		if !routed || addr == "" || (silent && now.Sub(since) >= w.goneAfter) {
			gone = append(gone, b)
		}
	}
	slices.Sort(gone)
	return gone, nil
}

// Avoided reports whether broker, still routed, did not answer the last probe while another
// did; Producer.AvoidBrokers takes it. Sends leave such a broker at once, before it counts as
// gone: each send placed on a frozen broker waits send_timeout, and a leader publishing one
// occurrence a second falls behind (and its repair pass with it) if half of them wait 3 s.
func (w *BrokerWatch) Avoided(broker string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.avoided[broker]
}

// route reads the routes of the watched topics and merges them: a broker is routed when
// either lists it, with its master's address when either has one. A topic whose route no name
// server gives is an error: what it would have listed is not known.
func (w *BrokerWatch) route(ctx context.Context) (map[string]string, error) {
	merged := map[string]string{}
	for _, topic := range w.topics {
		route, err := w.topicRoute(ctx, topic)
		if err != nil {
			return nil, err
		}
		for name, addr := range route {
			if merged[name] == "" {
				merged[name] = addr
			}
		}
	}
	return merged, nil
}

// topicRoute reads topic's route from the first name server that answers.
func (w *BrokerWatch) topicRoute(ctx context.Context, topic string) (map[string]string, error) {
	var errs []error
	for _, ns := range w.nameServers {
		rctx, cancel := context.WithTimeout(ctx, w.probe)
		route, err := w.rpc.topicRoute(rctx, ns, topic)
		cancel()
		if err == nil {
			return route, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("broker watch: route of %s: %w", topic, errors.Join(errs...))
}

// probeAll asks every routed master for its runtime info at once; any answer (even a refusal
// by ACL) shows the process is serving requests.
func (w *BrokerWatch) probeAll(ctx context.Context, route map[string]string) map[string]bool {
	var mu sync.Mutex
	var wg sync.WaitGroup
	out := make(map[string]bool, len(route))
	for name, addr := range route {
		if addr == "" {
			continue
		}
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, w.probe)
			defer cancel()
			_, _, err := w.rpc.invoke(pctx, addr, reqGetBrokerRuntime, nil)
			mu.Lock()
			out[name] = err == nil
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}
