package ledger

// Priority says where a group-committed call goes in the queue. The consumer passes First for
// the work of its schedule lane: a fire's claim and outcome must not wait behind a backlog of
// forced runs.
type Priority bool

// Priorities.
const (
	// InTurn: the call waits its turn in the group commit's queue.
	InTurn Priority = false
	// First: the call goes ahead of every call queued InTurn, in a flush of its own when every
	// flusher is busy (coalesce.Batcher.DoFirst).
	First Priority = true
)
