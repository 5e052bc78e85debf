package main

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/chatplat/job-service/filegc"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/job"
	"github.com/chatplat/job-service/ledger"
)

func gcLogCmd(g *globals) *cobra.Command {
	var f ledger.GCLogFilter
	cmd := &cobra.Command{
		Use:   "gc-log",
		Short: "What happened to a file: the GC's audit log (gc_log)",
		Long: "Lists the files the GC removed (daily file_gc sweep or ref_count=0 events), newest first,\n" +
			"with the run that removed each (see it with `jobctl show RUN_ID`).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.FileID == 0 && f.FileHash == "" && f.RunID == 0 {
				return errors.New("say which: --file ID, --hash HASH or --run RUN_ID")
			}
			_, l, pool, err := g.ledger(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			entries, err := l.GCLog(cmd.Context(), f)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), entries)
			}
			if len(entries) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no gc_log entry: the GC has not removed it")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "FILE\tHASH\tOBJECT\tBYTES\tMISSING\tDELETED AT\tRUN\tJOB\tRUN KEY")
			for _, e := range entries {
				run := "-"
				if e.RunID != nil {
					run = strconv.FormatInt(*e.RunID, 10)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s/%s\t%d\t%t\t%s\t%s\t%s\t%s\n", e.FileID, oneLine(e.FileHash, 20), e.Bucket,
					e.ObjectPath, e.Bytes, e.ObjectMissing, e.DeletedAt.UTC().Format(time.RFC3339), run, orDash(e.Job), orDash(e.RunKey))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().Int64Var(&f.FileID, "file", 0, "file id")
	cmd.Flags().StringVar(&f.FileHash, "hash", "", "file hash")
	cmd.Flags().Int64Var(&f.RunID, "run", 0, "run id (every file a run removed)")
	cmd.Flags().IntVar(&f.Limit, "limit", 100, "at most this many")
	return cmd
}

func fileEventCmd(g *globals) *cobra.Command {
	var ev filegc.Event
	var eventTime string
	cmd := &cobra.Command{
		Use:   "file-event --file ID",
		Short: "Publish a ref_count=0 event for a file, as the file service would",
		Long: "Publishes a REF_ZERO event on the file-event topic (filegc.topic). Fields not given are read\n" +
			"from the file's row (handlers.file_gc.file_table). The GC acts on it once filegc.grace has\n" +
			"passed since --event-time (default now), and only if the row is still deleted and unreferenced.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ev.FileID <= 0 {
				return errors.New("--file ID is required")
			}
			cfg, err := g.config()
			if err != nil {
				return err
			}
			ev.EventTime = time.Now().UTC()
			if eventTime != "" {
				if ev.EventTime, err = time.Parse(time.RFC3339, eventTime); err != nil {
					return fmt.Errorf("--event-time: %w", err)
				}
			}
			if ev.FileHash == "" || ev.Bucket == "" || ev.ObjectPath == "" {
				pool, err := app.OpenPool(ctx, cfg.Postgres)
				if err != nil {
					return err
				}
				defer pool.Close()
				t := job.SectionOf[handlers.FileGCConfig](cfg.Sections, handlers.FileGCKind).File
				c := t.Columns
				id := func(s string) string { return pgx.Identifier{s}.Sanitize() }
				var hash, bucket, path string
				err = pool.QueryRow(ctx, fmt.Sprintf(`SELECT %s, %s, %s FROM %s WHERE %s = $1`, id(c.FileHash), id(c.Bucket),
					id(c.ObjectPath), pgx.Identifier(splitName(t.Table)).Sanitize(), id(c.ID)), ev.FileID).Scan(&hash, &bucket, &path)
				if errors.Is(err, pgx.ErrNoRows) {
					return fmt.Errorf("file %d: no row in %s; give --hash, --bucket and --path", ev.FileID, t.Table)
				}
				if err != nil {
					return fmt.Errorf("look up file %d: %w", ev.FileID, err)
				}
				ev.FileHash = cmp.Or(ev.FileHash, hash)
				ev.Bucket = cmp.Or(ev.Bucket, bucket)
				ev.ObjectPath = cmp.Or(ev.ObjectPath, path)
			}
			body, err := filegc.Encode(ev, time.Now())
			if err != nil {
				return err
			}
			prod, err := openProducer(ctx, cfg)
			if err != nil {
				return err
			}
			defer prod.Close() //nolint:errcheck // nothing to do about it on exit
			msgID, err := prod.PublishRaw(ctx, cfg.FileGC.Topic, cfg.FileGC.Tag, []string{strconv.FormatInt(ev.FileID, 10)}, body, time.Time{})
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"msg_id": msgID, "event": ev, "topic": cfg.FileGC.Topic})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "published %s event for file %d (%s/%s) on %s, msg %s; due after %s\n",
				cfg.FileGC.Tag, ev.FileID, ev.Bucket, ev.ObjectPath, cfg.FileGC.Topic, msgID,
				ev.EventTime.Add(cfg.FileGC.Grace).Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().Int64Var(&ev.FileID, "file", 0, "file id (required)")
	cmd.Flags().StringVar(&ev.FileHash, "hash", "", "file hash (default: from the row)")
	cmd.Flags().StringVar(&ev.Bucket, "bucket", "", "bucket (default: from the row)")
	cmd.Flags().StringVar(&ev.ObjectPath, "path", "", "object path (default: from the row)")
	cmd.Flags().StringVar(&eventTime, "event-time", "", "RFC 3339 time ref_count reached 0 (default now)")
	return cmd
}

func splitName(name string) []string {
	for i := 0; i < len(name); i++ {
		if name[i] == '.' {
			return []string{name[:i], name[i+1:]}
		}
	}
	return []string{name}
}
