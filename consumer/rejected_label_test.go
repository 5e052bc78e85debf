package consumer

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

// knownRegistry knows only the kinds it lists.
type knownRegistry map[string]bool

func (k knownRegistry) Known(kind string) bool { return k[kind] }
func (knownRegistry) Prepare(job.Envelope) (job.Prepared, error) {
	return func(context.Context, int64, int) (any, error) { return nil, nil }, nil
}

type labelObserver struct {
	mu     sync.Mutex
	labels map[string]int
}

func (o *labelObserver) RunFinished(string, ledger.Status, time.Duration, time.Duration) {}
func (o *labelObserver) MessageRejected(jobName string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.labels[jobName]++
}

// Anyone may publish to the topic: a thousand made-up job names must not make a thousand
// metric series. A registered kind keeps its own label.
func TestRejectedMetricLabelsOnlyRegisteredKinds(t *testing.T) {
	t.Parallel()
	obs := &labelObserver{labels: map[string]int{}}
	specs := map[string]job.Spec{"probe": job.Spec{}.WithDefaults()}
	p := NewProcessor(Config{Node: "n"}, &fakeLedger{}, knownRegistry{"probe": true}, specs, nil, obs, discard(), time.Now)
	ctx := context.Background()
	const made = 1000
	for i := range made {
		name := fmt.Sprintf("made_up_%d", i)
		b := []byte(`{"job":"` + name + `","run_key":"k","trigger":"manual","scheduled_at":"` +
			time.Now().UTC().Format(time.RFC3339) + `","shard":{"index":0,"total":1}}`)
		d := p.Process(ctx, Delivery{Body: b, Tag: name, MsgID: fmt.Sprint(i)})
		require.Equal(t, Ack, d.Action)
	}
	// Undecodable bodies fall back to the tag, which is just as untrusted.
	require.Equal(t, Ack, p.Process(ctx, Delivery{Body: []byte("{"), Tag: "garbage_tag"}).Action)
	// A registered kind with a bad message keeps its label.
	require.Equal(t, Ack, p.Process(ctx, Delivery{Body: []byte(`{"job":"probe","colour":"red"}`), Tag: "probe"}).Action)
	require.Equal(t, map[string]int{"unknown": made + 1, "probe": 1}, obs.labels)
}
