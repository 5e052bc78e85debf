// Command peerworker is one River client or one Asynq server working the takeover benchmark's
// long job, run as a process of its own so the benchmark can kill it with -9. It prints
// "ready" once it works and "start <id> <attempt>" when an attempt of the long job begins.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/chatplat/job-service/bench/peers/peerjobs"
)

func main() {
	system := flag.String("system", "", "river or asynq")
	dsn := flag.String("dsn", "", "River: Postgres DSN (with search_path)")
	redis := flag.String("redis", "", "Asynq: Redis address")
	queue := flag.String("queue", "", "Asynq: queue name")
	rescueAfter := flag.Duration("rescue-after", 0, "River: RescueStuckJobsAfter (0: River's default)")
	jobTimeout := flag.Duration("job-timeout", 0, "River: JobTimeout (0: River's default)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var err error
	switch *system {
	case "river":
		err = runRiver(ctx, *dsn, *rescueAfter, *jobTimeout)
	case "asynq":
		err = runAsynq(ctx, *redis, *queue)
	default:
		err = fmt.Errorf("-system: %q is not river or asynq", *system)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "peerworker:", err)
		os.Exit(1)
	}
}

func onStart(id string, attempt int) { fmt.Printf("start %s %d\n", id, attempt) }

func runRiver(ctx context.Context, dsn string, rescueAfter, jobTimeout time.Duration) error {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	defer pool.Close()
	workers := river.NewWorkers()
	river.AddWorker(workers, &peerjobs.LongWorker{OnStart: onStart})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:               map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 10}},
		Workers:              workers,
		RescueStuckJobsAfter: rescueAfter,
		JobTimeout:           jobTimeout,
		Logger:               slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return fmt.Errorf("river client: %w", err)
	}
	if err := client.Start(ctx); err != nil {
		return fmt.Errorf("start river client: %w", err)
	}
	fmt.Println("ready")
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return client.Stop(stopCtx)
}

func runAsynq(ctx context.Context, addr, queue string) error {
	mux := asynq.NewServeMux()
	mux.Handle(peerjobs.LongKind, peerjobs.AsynqHandler(onStart))
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, asynq.Config{Concurrency: 10,
		Queues: map[string]int{queue: 1}, LogLevel: asynq.WarnLevel})
	if err := srv.Start(mux); err != nil {
		return fmt.Errorf("start asynq server: %w", err)
	}
	fmt.Println("ready")
	<-ctx.Done()
	srv.Shutdown()
	return nil
}
