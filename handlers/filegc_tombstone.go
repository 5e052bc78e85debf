package handlers

import (
	"context"
	"math"

	"github.com/chatplat/job-service/filereap"
	"github.com/chatplat/job-service/job"
)

// finishTombstones collects this shard's tombstones that a cancelled, timed-out or killed run
// left: first those of this run's earlier attempts (the consumer fenced them: they will never
// finish their batches), whatever their age, in this run: the reaper waits until each is
// s3_timeout old, since the dead attempt's multi-delete may still be running at the server;
// then any older than the S3 timeout that other runs left (a run still in its S3 call is
// left alone).
func (g *FileGC) finishTombstones(ctx context.Context, run *job.Run[FileGCArgs], shard job.Shard, maxDeletes int, res *FileGCResult) error {
	if run.RunID != 0 && run.Attempt > 1 {
		owner := filereap.Owner{RunID: run.RunID, Attempt: run.Attempt}
		if err := g.finishEach(ctx, run, maxDeletes, res, func(after int64) ([]int64, error) {
			return g.reaper.DeadAttemptTombstones(ctx, owner, after, g.cfg.BatchSize)
		}); err != nil {
			return err
		}
	}
	return g.finishEach(ctx, run, maxDeletes, res, func(after int64) ([]int64, error) {
		return g.reaper.StaleTombstones(ctx, shard.Index, shard.Total, g.cfg.S3Timeout, after, g.cfg.BatchSize)
	})
}

// finishEach reaps the tombstones next lists, a batch at a time, by ascending id.
func (g *FileGC) finishEach(ctx context.Context, run *job.Run[FileGCArgs], maxDeletes int, res *FileGCResult,
	next func(after int64) ([]int64, error)) error {
	after := int64(math.MinInt64)
	for !res.Capped {
		ids, err := next(after)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		after = ids[len(ids)-1]
		if err := g.reapBatch(ctx, run, ids, maxDeletes, res); err != nil {
			return err
		}
		if len(ids) < g.cfg.BatchSize {
			return nil
		}
	}
	return nil
}

// tombstoneOwner is the attempt a run's tombstones are recorded for (none without a ledger row).
func tombstoneOwner(run *job.Run[FileGCArgs]) filereap.Owner {
	if run.RunID == 0 {
		return filereap.Owner{}
	}
	return filereap.Owner{RunID: run.RunID, Attempt: run.Attempt}
}
