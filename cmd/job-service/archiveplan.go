package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatplat/job-service/archive"
	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/job"
)

// chatTables are the platform's chat history tables: partition_archive moves them only when
// the config names their hot period.
var chatTables = []string{"chat_messages", "chat_inbox"}

// planTimeout bounds config check's look at Postgres for the archive's sizes.
const planTimeout = 5 * time.Second

// printArchivePlan says what partition_archive will archive and drop under cfg; with Postgres
// reachable, which partitions and how large, as the job's dry run lists them.
func printArchivePlan(ctx context.Context, w io.Writer, cfg config.Config) {
	spec := cfg.Spec(handlers.PartitionArchiveKind)
	if !spec.IsEnabled() {
		fmt.Fprintln(w, "partition_archive: not scheduled")
		return
	}
	ac := job.SectionOf[handlers.PartitionArchiveConfig](cfg.Sections, handlers.PartitionArchiveKind).WithDefaults()
	var moved []string
	listed := map[string]bool{}
	for _, t := range ac.Tables {
		moved = append(moved, fmt.Sprintf("%s (months older than %d)", t.Table, t.HotMonths))
		listed[t.Table] = true
	}
	fate := "keeps them detached in Postgres (drop: false)"
	if *ac.Drop {
		fate = fmt.Sprintf("drops them from Postgres once their copy in s3://%s is verified", ac.Bucket)
	}
	fmt.Fprintf(w, "partition_archive: archives %s, then %s\n", strings.Join(moved, ", "), fate)
	var kept []string
	for _, t := range chatTables {
		if !listed[t] {
			kept = append(kept, t)
		}
	}
	if len(kept) > 0 {
		fmt.Fprintf(w, "partition_archive: %s are not archived (no hot_months for them in handlers.partition_archive.tables)\n",
			strings.Join(kept, ", "))
	}
	if *ac.FirstRunDryRun {
		fmt.Fprintln(w, "partition_archive: a new deployment's first run is a dry run (first_run_dry_run); the next run acts")
	}

	ctx, cancel := context.WithTimeout(ctx, planTimeout)
	defer cancel()
	pc, err := pgxpool.ParseConfig(cfg.Postgres.DSN)
	if err == nil {
		pc.MaxConns, pc.ConnConfig.ConnectTimeout = 2, planTimeout
		var pool *pgxpool.Pool
		if pool, err = pgxpool.NewWithConfig(ctx, pc); err == nil {
			defer pool.Close()
			err = printArchiveSizes(ctx, w, pool, ac)
		}
	}
	if err != nil {
		fmt.Fprintf(w, "partition_archive: sizes unknown (Postgres: %s); `jobctl run partition_archive --param dry_run=true --wait` lists them\n",
			strings.ReplaceAll(err.Error(), "\n", "; "))
	}
}

func printArchiveSizes(ctx context.Context, w io.Writer, pool *pgxpool.Pool, ac archive.Config) error {
	a, err := archive.New(pool, nil, ac, time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	res, err := a.Run(ctx, archive.Options{DryRun: true})
	if err != nil && len(res.Items) == 0 {
		return err
	}
	verb := "archive and drop"
	if !res.Drop {
		verb = "archive and detach"
	}
	n := 0
	for _, it := range res.Items {
		if it.Action != "would_archive" && it.Action != "would_resume" {
			continue
		}
		n++
		fmt.Fprintf(w, "partition_archive: would %s %s.%s [%s, %s): ~%d rows, %d bytes on disk\n",
			verb, it.Table, it.Partition, it.From, it.To, it.EstRows, it.DiskBytes)
	}
	if n == 0 {
		fmt.Fprintln(w, "partition_archive: nothing is due now")
	}
	if res.Capped {
		fmt.Fprintf(w, "partition_archive: more is due than max_partitions (%d) per run\n", ac.MaxPartitions)
	}
	if err != nil {
		fmt.Fprintf(w, "partition_archive: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return nil
}
