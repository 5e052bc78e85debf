package handlers

import (
	"context"
	"math"

	"github.com/chatplat/job-service/job"
)

// finishTombstones collects this shard's tombstones that a cancelled, timed-out or killed run
// left (older than the S3 timeout, so a run still in its S3 call is left alone; finishing
// concurrently would be harmless, only wasted).
func (g *FileGC) finishTombstones(ctx context.Context, run *job.Run[FileGCArgs], shard job.Shard, maxDeletes int, res *FileGCResult) error {
	after := int64(math.MinInt64)
	for !res.Capped {
		ids, err := g.reaper.StaleTombstones(ctx, shard.Index, shard.Total, g.cfg.S3Timeout, after, g.cfg.BatchSize)
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
