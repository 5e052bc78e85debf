package consumer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatplat/job-service/job"
)

// BenchmarkProcessBatchNoop is the engine's own cost per no-op run (a fake ledger, no I/O):
// deliveries of 32 messages, 8 handler slots.
func BenchmarkProcessBatchNoop(b *testing.B) {
	l := newBatchLedger()
	spec := job.Spec{MaxAttempts: 1, Overlap: job.OverlapAllow}.WithDefaults()
	p := NewProcessor(Config{Node: "n", MaxRunning: 8, Goroutines: 256}, l, keyRegistry{},
		map[string]job.Spec{"probe": spec}, &recPublisher{}, nil, discard(), time.Now)
	bodies := make([][]byte, 32)
	for i := range bodies {
		b, err := job.Encode(job.Envelope{Job: "probe", RunKey: fmt.Sprintf("k%d", i), Trigger: job.TriggerManual,
			ScheduledAt: time.Now().Add(-time.Second), Shard: job.Shard{Total: 1}})
		if err != nil {
			panic(err)
		}
		bodies[i] = b
	}
	ds := deliveries(bodies...)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		p.ProcessBatch(context.Background(), ds)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ds)), "ns/run")
}
