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
	"github.com/chatplat/job-service/mq/consume"
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
	Consumer *consume.Consumer
	// ScheduleConsumer takes the schedule topic (the ticker's fires) into Proc's schedule lane.
	ScheduleConsumer *consume.Consumer
	Proc             *consumer.Processor
	Redis            *redis.Client
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

	ownPool bool
	// services are what Start started, in order; Stop stops them in reverse.
	services []Service
	// closeSearch closes the Elasticsearch and Neo4j clients Start opened.
	closeSearch func(context.Context) error
}

// Start connects, migrates, and starts the producer, then its services in order: the database
// clock, the notifier, the consumers, the ticker and the node's heartbeat. On error everything
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
	defer func() {
		// The ledger collector needs the ledger and the registry, both ready once Start got here.
		if err == nil && n.Ledger != nil && n.Registry != nil {
			n.Metrics.WatchLedger(n.Ledger, n.Registry.Kinds)
			n.Metrics.WatchFileGC(n.Ledger, handlers.FileGCKind)
		}
	}()
	bi := Build()
	n.Metrics.SetBuildInfo(bi.Version, bi.Revision, bi.GoVersion)
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
	if err := n.start(ctx, &funcService{run: func(ctx context.Context) { n.Clock.Run(ctx, 10*time.Second) }}); err != nil {
		return err
	}
	dbNow := n.Clock.Now
	n.Ledger = ledger.New(n.Pool).WithSections(n.Cfg.Sections)
	if n.Redis == nil {
		n.Redis = OpenRedis(n.Cfg.Redis)
	}
	if n.S3, err = NewS3Client(n.Cfg.S3); err != nil {
		return err
	}
	// The producer starts after the registry (config errors first); msg_gap_check reaches it
	// through the node at run time.
	deps := handlers.Deps{DB: n.Pool, Redis: n.Redis, S3: objectStore(n.S3), Events: nodePublisher{n}, Now: now, Log: n.Log}
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
	topics := []string{n.Cfg.RocketMQ.Topic}
	if ev := job.SectionOf[handlers.MsgGapConfig](n.Cfg.Sections, handlers.MsgGapKind).Events; ev.Enabled {
		topics = append(topics, ev.Topic)
	}
	if err := mq.EnsureGroupTopics(ctx, n.Cfg.RocketMQ, n.Cfg.RocketMQ.ConsumerGroup, topics...); err != nil {
		return err
	}
	if err := mq.EnsureGroupTopics(ctx, n.Cfg.RocketMQ, n.Cfg.RocketMQ.ScheduleGroup(), n.Cfg.RocketMQ.ScheduleTopic); err != nil {
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
		n.Alerts.OnDeliveryFailed(n.Metrics.AlertDeliveryFailed)
		n.Proc.SetAlerter(n.Alerts)
		// Started before the consumers, so stopped after them: alerts of runs that just failed
		// are still being delivered, and get what is left of the stop's time.
		if err := n.start(ctx, n.Alerts); err != nil {
			return err
		}
	}
	laneConsumer := func(lane consumer.Lane, topic, group, instance string) *consume.Consumer {
		return consume.New(consume.Options{
			NameServers: n.Cfg.RocketMQ.NameServers, Topic: topic, Group: group, Instance: instance,
			AccessKey: n.Cfg.RocketMQ.AccessKey, SecretKey: n.Cfg.RocketMQ.SecretKey, Resend: n.Producer, Lane: lane,
			Now: dbNow,
		}, n.Proc, n.Log)
	}
	n.Consumer = laneConsumer(consumer.LaneJobs, n.Cfg.RocketMQ.Topic, n.Cfg.RocketMQ.ConsumerGroup, n.Instance)
	// The schedule lane: the ticker's fires on a topic, group, client cache and in-hand
	// tokens of their own, so they never queue behind forced runs (docs/architecture.md, "Schedule lane").
	n.ScheduleConsumer = laneConsumer(consumer.LaneSchedule, n.Cfg.RocketMQ.ScheduleTopic, n.Cfg.RocketMQ.ScheduleGroup(),
		n.instance("schedule"))
	consumers := together{n.Consumer, n.ScheduleConsumer}
	if n.FileGC, err = n.newFileGC(ctx, now); err != nil {
		return err
	}
	if n.FileGC != nil {
		consumers = append(consumers, n.FileGC)
	}
	if err := n.start(ctx, consumers); err != nil {
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
		// The watch reads the route with the local clock: a broker's silence is this node's own
		// measure, not a database timestamp.
		watch := mq.NewBrokerWatch(n.Cfg.RocketMQ, tc.BrokerGoneAfter, time.Now)
		n.Ticker.SetBrokerWatch(watch)
		// The republishes (and every send of this node) then skip a frozen broker at once.
		n.Producer.AvoidBrokers(watch.Avoided)
		if n.Alerts != nil {
			n.Ticker.SetAlerter(n.Alerts)
		}
		n.Ticker.OnLeadershipChange(n.Metrics.SetLeader)
		if err := n.start(ctx, n.Ticker); err != nil {
			return err
		}
	}
	// Last to start, first to stop: the node's row in job_nodes, marked stopped at the end.
	if err := n.start(ctx, &funcService{run: func(ctx context.Context) { n.beatNode(ctx, now(), now) }}); err != nil {
		return err
	}
	n.Log.Info("node started", "node", n.Cfg.Node, "version", Build().Version, "jobs", n.Registry.Kinds())
	return nil
}

// start starts s and adds it to the services Stop stops.
func (n *Node) start(ctx context.Context, s Service) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	n.services = append(n.services, s)
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

// Stop pauses the consumer, stops the services in reverse order of start (heartbeat, ticker,
// then the job consumer and the file GC draining together, notifier, clock) and closes the
// clients. Idempotent enough to call on a half-started node.
func (n *Node) Stop(ctx context.Context) error {
	// First of all, no new message and no new handler: the rest of the shutdown takes time.
	if n.Consumer != nil {
		n.Consumer.Pause()
		if n.ScheduleConsumer != nil {
			n.ScheduleConsumer.Pause()
		}
		// Logged once the pause took effect, before any other service stops: the order of the
		// node's log is how a drain shows (and the chaos test checks) that jobs stopped first.
		n.Log.Info("job consumer paused: no new job messages", "runs_in_flight", n.Proc.InFlight())
	}
	errs := []error{stopAll(ctx, n.services)}
	n.services = nil
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

// nodePublisher publishes through the node's producer, which exists by the time a job runs.
type nodePublisher struct{ n *Node }

func (p nodePublisher) PublishRaw(ctx context.Context, topic, tag string, keys []string, body []byte, deliverAt time.Time) (string, error) {
	if p.n.Producer == nil {
		return "", errors.New("node producer not started")
	}
	return p.n.Producer.PublishRaw(ctx, topic, tag, keys, body, deliverAt)
}
