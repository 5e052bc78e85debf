package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/minio/minio-go/v7"
	"github.com/redis/go-redis/v9"

	"github.com/chatplat/job-service/alert"
	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/consumer"
	"github.com/chatplat/job-service/filegc"
	"github.com/chatplat/job-service/filereap"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
	"github.com/chatplat/job-service/metrics"
	"github.com/chatplat/job-service/mq"
	"github.com/chatplat/job-service/runlog"
	"github.com/chatplat/job-service/ticker"
)

// Node is one job-service process: ticker (competing for the lease), consumer and ledger.
type Node struct {
	Cfg      *config.Config
	Log      *slog.Logger
	Pool     *pgxpool.Pool
	Ledger   *ledger.Ledger
	Registry *job.Registry
	Producer *mq.Producer
	Ticker   *ticker.Ticker
	Consumer *consumer.Consumer
	Proc     *consumer.Processor
	Redis    *redis.Client
	// Alerts is nil when no alert channel is configured.
	Alerts *alert.Notifier
	// Metrics is the node's Prometheus registry; Start creates it when nil.
	Metrics *metrics.Metrics
	S3      *minio.Client    // nil without s3.endpoint
	FileGC  *filegc.Consumer // nil unless filegc.enabled
	// FileGCObserver, if set, is told what the event GC removed (metrics).
	FileGCObserver filegc.Observer

	// Instance distinguishes several nodes in one process (tests); empty in production.
	Instance string
	// ExtraRegister, if set, registers more handlers (tests add their own job kinds).
	ExtraRegister func(*job.Registry)
	// LocalClock, if set, replaces time.Now as this node's own clock (tests skew it). The
	// ticker and consumer never use it directly: they use Clock, the database's time.
	LocalClock func() time.Time
	// Clock is the database's time (the local clock corrected by a periodic measurement).
	Clock *ledger.Clock

	ownPool   bool
	stopClock context.CancelFunc
	// closeSearch closes the Elasticsearch and Neo4j clients Start opened.
	closeSearch func(context.Context) error
}

// Start connects, migrates, and starts the producer, consumer and ticker. On error everything
// started so far is stopped.
func (n *Node) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			n.Stop(context.Background())
		}
	}()
	now := time.Now
	if _, wrapped := n.Log.Handler().(*runlog.Handler); !wrapped {
		// What handlers log with their run's context is kept with the run (see runlog).
		n.Log = slog.New(runlog.Wrap(n.Log.Handler()))
	}
	if n.Metrics == nil {
		n.Metrics = metrics.New(n.Cfg.Node)
	}
	if n.Pool == nil {
		if n.Pool, err = OpenPool(ctx, n.Cfg.Postgres); err != nil {
			return err
		}
		n.ownPool = true
	}
	if err := ledger.Migrate(ctx, n.Pool); err != nil {
		return err
	}
	// Schedules, misfires and early deliveries are decided on the database's clock, so a node
	// whose own clock is off neither skips nor repeats occurrences.
	local := n.LocalClock
	if local == nil {
		local = time.Now
	}
	n.Clock = ledger.NewClock(n.Pool, local)
	if err := n.Clock.Sync(ctx); err != nil {
		return err
	}
	if off := n.Clock.Offset(); off > time.Second || off < -time.Second {
		n.Log.Warn("this node's clock differs from the database's; using the database's", "offset", off.Round(time.Millisecond))
	}
	clockCtx, stopClock := context.WithCancel(context.WithoutCancel(ctx))
	n.stopClock = stopClock
	go n.Clock.Run(clockCtx, 10*time.Second)
	dbNow := n.Clock.Now
	n.Ledger = ledger.New(n.Pool)
	if n.Redis == nil {
		n.Redis = OpenRedis(n.Cfg.Redis)
	}
	if n.S3, err = NewS3Client(n.Cfg.S3); err != nil {
		return err
	}
	deps := handlers.Deps{DB: n.Pool, Redis: n.Redis, S3: objectStore(n.S3), Now: now, Log: n.Log}
	if n.closeSearch, err = openSearchDeps(n.Cfg, &deps); err != nil {
		return err
	}
	if n.Registry, err = handlers.NewRegistry(deps, n.Cfg.Sections); err != nil {
		return err
	}
	if n.ExtraRegister != nil {
		n.ExtraRegister(n.Registry)
	}
	if err := n.Cfg.CheckJobsKnown(n.Registry.Known); err != nil {
		return err
	}
	if err := CheckNameServers(ctx, n.Cfg.RocketMQ); err != nil {
		return err
	}
	if err := mq.EnsureTopics(ctx, n.Cfg.RocketMQ, n.Cfg.RocketMQ.Topic, mq.RetryTopic(n.Cfg.RocketMQ.ConsumerGroup)); err != nil {
		return err
	}
	if n.Producer, err = mq.NewProducer(n.Cfg.RocketMQ, n.instance("producer")); err != nil {
		return err
	}
	// Claims and outcomes from concurrent messages share statements (see ledger.GroupCommit).
	cc := n.Cfg.Consumer.WithDefaults()
	grouped := ledger.NewGroupCommit(n.Ledger, cc.LedgerBatch, cc.LedgerFlushers, n.Metrics)
	n.Proc = consumer.NewProcessor(n.Cfg.Consumer, grouped, n.Registry, n.Cfg.Jobs, n.Producer, n.Metrics, n.Log, dbNow)
	if n.Cfg.Alerts.Enabled() {
		if n.Alerts, err = alert.New(n.Cfg.Alerts, n.Pool, n.Cfg.Node, n.Log.With("component", "alert"), now); err != nil {
			return err
		}
		n.Proc.SetAlerter(n.Alerts)
	}
	n.Consumer = consumer.New(consumer.Options{
		NameServers: n.Cfg.RocketMQ.NameServers, Topic: n.Cfg.RocketMQ.Topic, Group: n.Cfg.RocketMQ.ConsumerGroup,
		Instance: n.Instance, AccessKey: n.Cfg.RocketMQ.AccessKey, SecretKey: n.Cfg.RocketMQ.SecretKey,
	}, n.Proc, n.Log)
	if err := n.Consumer.Start(ctx); err != nil {
		return err
	}
	if err := n.startFileGC(ctx, now); err != nil {
		return err
	}
	if *n.Cfg.Ticker.Enabled {
		tc := n.Cfg.Ticker.WithDefaults()
		lease := ticker.NewLease(n.Pool, tc.LeaseKey, tc.LeaseTimeout)
		n.Ticker, err = ticker.New(n.Cfg.Ticker, n.Cfg.Node, n.Cfg.Jobs, n.Ledger, n.Producer, lease, n.Log, dbNow)
		if err != nil {
			return err
		}
		n.Ticker.SetKnown(n.Registry.Known)
		if n.Alerts != nil {
			n.Ticker.SetAlerter(n.Alerts)
		}
		n.Ticker.OnLeadershipChange(n.Metrics.SetLeader)
		if err := n.Ticker.Start(ctx); err != nil {
			return err
		}
	}
	n.Log.Info("node started", "node", n.Cfg.Node, "jobs", n.Registry.Kinds())
	return nil
}

// objectStore turns a nil client into a nil interface (not an interface holding nil).
func objectStore(c *minio.Client) filereap.ObjectStore {
	if c == nil {
		return nil
	}
	return c
}

func (n *Node) instance(role string) string {
	if n.Instance == "" {
		return ""
	}
	return fmt.Sprintf("%s-%s", n.Instance, role)
}

// Stop stops the ticker, drains the consumer and closes clients. Idempotent enough to call on
// a half-started node.
func (n *Node) Stop(ctx context.Context) error {
	var errs []error
	// First of all, no new message and no new handler: the rest of the shutdown takes time.
	if n.Consumer != nil {
		n.Consumer.Pause()
	}
	if n.Ticker != nil {
		n.Ticker.Stop()
	}
	// The file GC drains its batches while the job runs drain, within the same deadline.
	gcDone := make(chan error, 1)
	go func() {
		if n.FileGC != nil {
			gcDone <- n.FileGC.Stop(ctx)
			return
		}
		gcDone <- nil
	}()
	if n.Consumer != nil {
		interrupted, err := n.Consumer.Stop(ctx)
		if interrupted > 0 {
			n.Log.Warn("runs interrupted by shutdown; they will be redelivered", "runs", interrupted)
		}
		errs = append(errs, err)
	}
	errs = append(errs, <-gcDone)
	if n.stopClock != nil {
		n.stopClock()
	}
	if n.Alerts != nil {
		// Alerts of runs that just failed are still being delivered; give them the stop's time.
		errs = append(errs, n.Alerts.Close(ctx))
		n.Alerts = nil
	}
	if n.Redis != nil {
		errs = append(errs, n.Redis.Close())
		n.Redis = nil
	}
	if n.Producer != nil {
		errs = append(errs, n.Producer.Close())
		n.Producer = nil
	}
	if n.closeSearch != nil {
		errs = append(errs, n.closeSearch(ctx))
		n.closeSearch = nil
	}
	if n.ownPool && n.Pool != nil {
		n.Pool.Close()
		n.Pool = nil
	}
	return errors.Join(errs...)
}
