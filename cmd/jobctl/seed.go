package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/demo"
)

// seedSummary is what seed-demo prints: the row count of each chat table it filled.
type seedSummary struct {
	Schema string           `json:"schema"`
	Rows   map[string]int64 `json:"rows"`
}

func seedCmd(g *globals) *cobra.Command {
	var schemaPath string
	cmd := &cobra.Command{
		Use:   "seed-demo",
		Short: "Load the chat schema and fill the local stack with demo data (repeatable)",
		Long: "Applies the chat platform's schema (CREATE ... IF NOT EXISTS) to the configured database,\n" +
			"makes sure monthly partitions exist, and fills the chat tables with demo data relative to now.\n" +
			"Running it again replaces the demo rows: counts stay the same, timestamps move to the new now.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := g.config()
			if err != nil {
				return err
			}
			pool, err := app.OpenPool(ctx, cfg.Postgres)
			if err != nil {
				return err
			}
			defer pool.Close()
			schema, err := os.ReadFile(schemaPath)
			if err != nil {
				return fmt.Errorf("chat schema (run from the repository root, or pass --schema): %w", err)
			}
			// No arguments: pgx sends it as one simple-protocol query, so the file's several
			// statements run in order.
			if _, err := pool.Exec(ctx, string(schema)); err != nil {
				return fmt.Errorf("apply %s: %w", schemaPath, err)
			}
			now := time.Now()
			userIDs, err := demo.SeedChat(ctx, pool, now)
			if err != nil {
				return fmt.Errorf("seed chat tables: %w", err)
			}
			_ = userIDs // the graph seeder below mirrors these users into Neo4j

			// ---- Other systems' demo data: the lead wires these in here ----
			// demo.SeedElasticsearch, demo.SeedNeo4j (internal/demo/search.go; SeedNeo4j gets userIDs),
			// demo.SeedFiles (internal/demo/files.go; objects for file_metadata rows in
			// demo.FileBucket at files/<hash[:2]>/<hash>), demo.SeedRedis (internal/demo/redis.go).
			// ---- end of other seeders ----

			sum, err := chatCounts(ctx, pool, schemaPath)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), sum)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "applied %s; chat tables: %d users, %d channels, %d members, %d messages, %d audit logs, %d files\n",
				schemaPath, sum.Rows["users"], sum.Rows["channels"], sum.Rows["channel_members"], sum.Rows["chat_messages"],
				sum.Rows["audit_logs"], sum.Rows["file_metadata"])
			return nil
		},
	}
	cmd.Flags().StringVar(&schemaPath, "schema", "deploy/local/chat_schema.sql", "the chat schema file, applied first")
	return cmd
}

func chatCounts(ctx context.Context, pool *pgxpool.Pool, schemaPath string) (seedSummary, error) {
	sum := seedSummary{Schema: schemaPath, Rows: map[string]int64{}}
	for _, t := range []string{"users", "channels", "channel_members", "chat_messages", "audit_logs", "file_metadata"} {
		var n int64
		// Fixed names from this list, not input.
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+t).Scan(&n); err != nil {
			return sum, fmt.Errorf("count %s: %w", t, err)
		}
		sum.Rows[t] = n
	}
	return sum, nil
}
