package main

import (
	"errors"
	"fmt"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/chatplat/job-service/archive"
	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/job"
)

func archiveCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "archive",
		Short: "Partitions moved to S3 by partition_archive: list them, restore one",
	}
	cmd.AddCommand(archiveListCmd(g), archiveRestoreCmd(g))
	return cmd
}

func archiveListCmd(g *globals) *cobra.Command {
	var f archive.ListFilter
	var state string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "The archive manifest: every partition archived or on its way, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, _, pool, err := g.ledger(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			f.State = archive.State(state)
			entries, err := archive.List(cmd.Context(), pool, f)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), entries)
			}
			if len(entries) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no archived partitions")
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 2, 2, ' ', 0)
			fmt.Fprintln(tw, "TABLE\tPARTITION\tFROM\tTO\tSTATE\tROWS\tBYTES\tOBJECT\tUPDATED\tERROR")
			for _, e := range entries {
				fmt.Fprintf(tw, "%s.%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s/%s\t%s\t%s\n", e.ParentSchema, e.ParentTable, e.Partition,
					e.RangeFrom, e.RangeTo, e.State, num(e.Rows), num(e.Bytes), e.Bucket, e.ObjectKey,
					e.UpdatedAt.UTC().Format(time.RFC3339), orDash(oneLine(e.Error, 60)))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&f.Table, "table", "", "only this parent table")
	cmd.Flags().StringVar(&state, "state", "", "only this state (exporting, exported, verified, detached, dropped, restored, conflict)")
	cmd.Flags().IntVar(&f.Limit, "limit", 500, "at most this many rows")
	return cmd
}

func num(p *int64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func archiveRestoreCmd(g *globals) *cobra.Command {
	var attach, separate bool
	var as string
	cmd := &cobra.Command{
		Use:   "restore TABLE PARTITION",
		Short: "Load an archived partition back from S3, verified, attached or as a separate table",
		Long: "Re-creates PARTITION from its archive object in one transaction: streams the object through\n" +
			"gunzip into COPY FROM STDIN, checks the object's SHA-256, the row count and the content checksum\n" +
			"(of the object and of the loaded table) against the manifest, then either attaches it to TABLE\n" +
			"with its original bounds (--attach, the default) or leaves it as a plain table named\n" +
			"PARTITION_restored or --as NAME (--separate). Any mismatch rolls everything back.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if attach && separate {
				return errors.New("--attach and --separate exclude each other")
			}
			mode := archive.RestoreAttach
			if separate {
				mode = archive.RestoreSeparate
			}
			cfg, _, pool, err := g.ledger(cmd.Context())
			if err != nil {
				return err
			}
			defer pool.Close()
			s3, err := app.NewS3Client(cfg.S3)
			if err != nil {
				return err
			}
			if s3 == nil {
				return errors.New("s3.endpoint is not configured: the archives cannot be read")
			}
			section := job.SectionOf[archive.Config](cfg.Sections, handlers.PartitionArchiveKind)
			a, err := archive.New(pool, s3, *section, time.Now, slog.New(slog.DiscardHandler))
			if err != nil {
				return fmt.Errorf("handlers.partition_archive: %w", err)
			}
			res, err := archive.Restore(cmd.Context(), a, args[0], args[1], mode, as)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s (%s) from %s: %d rows, checksum %s verified\n",
				res.Table, res.Mode, res.Object, res.Rows, res.Checksum)
			return nil
		},
	}
	cmd.Flags().BoolVar(&attach, "attach", false, "re-create it as a partition of TABLE with its original bounds (default)")
	cmd.Flags().BoolVar(&separate, "separate", false, "load it into a plain table beside TABLE")
	cmd.Flags().StringVar(&as, "as", "", "with --separate: the new table's name (default PARTITION_restored)")
	return cmd
}
