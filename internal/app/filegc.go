package app

import (
	"context"
	"time"

	"github.com/chatplat/job-service/filegc"
	"github.com/chatplat/job-service/filereap"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/mq"
)

// newFileGC builds the event-driven file GC when filegc.enabled (nil otherwise): its topic is
// created like the job topic, and its consumer joins its own group so file events never wait
// behind jobs. The node starts it with the job consumer.
func (n *Node) newFileGC(ctx context.Context, now func() time.Time) (*filegc.Consumer, error) {
	cfg := n.Cfg.FileGC
	if !cfg.Enabled {
		return nil, nil
	}
	// The group's retry topic too: a batch that fails (S3 down) is redelivered through it.
	if err := mq.EnsureGroupTopics(ctx, n.Cfg.RocketMQ, cfg.Group, cfg.Topic); err != nil {
		return nil, err
	}
	log := n.Log.With("component", "filegc")
	table := job.SectionOf[handlers.FileGCConfig](n.Cfg.Sections, handlers.FileGCKind).File
	reaper := filereap.NewReaper(n.Pool, objectStore(n.S3), table, cfg.ReaperOptions, log)
	obs := n.FileGCObserver
	if obs == nil {
		obs = n.Metrics // jobservice_gc_objects_deleted_total and _bytes
	}
	proc := filegc.NewProcessor(cfg, reaper, n.Producer, n.Ledger, n.Cfg.Node, obs, now, log)
	return filegc.NewConsumer(cfg, filegc.ConsumerOptions{NameServers: n.Cfg.RocketMQ.NameServers,
		Instance: n.instance("filegc"), AccessKey: n.Cfg.RocketMQ.AccessKey, SecretKey: n.Cfg.RocketMQ.SecretKey}, proc, log), nil
}
