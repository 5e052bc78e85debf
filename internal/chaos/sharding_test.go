package chaos_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/internal/chaos"
	"github.com/chatplat/job-service/internal/testenv"
)

// Sharding broadcast, as the design means it: a 3-shard run on 3 nodes runs one shard on each
// node, every time; single-shard runs, published by a fresh short-lived producer each (like
// `jobctl run`), spread over every node.
func TestShardsRunOnePerNode(t *testing.T) {
	t.Parallel()
	m := testenv.NewMQ(t, 12)
	w := newWorld(t, "", &m.Config, chaos.Settings{})
	for _, n := range []string{"a", "b", "c"} {
		w.c.Start(n, nil)
	}
	w.ready(3)

	for i := 0; i < 10; i++ {
		key := fmt.Sprintf("manual:shards-%d-%s", i, testenv.Suffix())
		w.publish(forced(chaos.NoopKind, key, 3, `{}`)...)
		rs := w.waitDone(chaos.NoopKind, key, 3, 60*time.Second)
		nodes := map[string]bool{}
		for _, r := range rs {
			require.Equal(t, "succeeded", r.Status, "%v", r)
			nodes[r.Node] = true
		}
		require.Len(t, nodes, 3, "run %d: shards on %v", i, rs)
	}

	touched := map[string]int{}
	for i := 0; i < 30; i++ {
		key := fmt.Sprintf("manual:single-%d-%s", i, testenv.Suffix())
		w.prod = nil // a new producer per run, as each jobctl invocation is
		w.publish(forced(chaos.NoopKind, key, 1, `{}`)...)
		rs := w.waitDone(chaos.NoopKind, key, 1, 60*time.Second)
		touched[rs[0].Node]++
	}
	t.Logf("30 single-shard runs per node: %v", touched)
	require.Len(t, touched, 3, "every node ran some: %v", touched)
}
