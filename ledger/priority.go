package ledger

import "context"

// firstKey marks a context whose claims and outcomes go ahead of the group commit's queue.
type firstKey struct{}

// WithPriority returns ctx marked so that GroupCommit sends the claims and outcomes made with
// it ahead of every call queued without the mark, in a flush of their own when every flusher
// is busy (coalesce.Batcher.DoFirst). The consumer marks the work of its schedule lane: a
// fire's claim and outcome must not wait behind a backlog of forced runs.
func WithPriority(ctx context.Context) context.Context {
	return context.WithValue(ctx, firstKey{}, true)
}

// HasPriority reports whether ctx was marked by WithPriority.
func HasPriority(ctx context.Context) bool {
	first, _ := ctx.Value(firstKey{}).(bool)
	return first
}
