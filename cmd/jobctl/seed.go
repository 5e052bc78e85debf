package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/internal/app"
	"github.com/chatplat/job-service/internal/demo"
)

// seedSummary is what seed-demo prints: the row count of each chat table it filled.
type seedSummary struct {
	Schema string           `json:"schema"`
	Rows   map[string]int64 `json:"rows"`
	// Skipped names the systems the config does not configure, so they got no demo data.
	Skipped []string `json:"skipped,omitempty"`
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
			if _, _, err := demo.SeedOldMonth(ctx, pool, now); err != nil {
				return fmt.Errorf("seed the archive demo's old month: %w", err)
			}
			skipped, err := seedOtherSystems(ctx, cfg, pool, userIDs, now)
			if err != nil {
				return err
			}

			sum, err := chatCounts(ctx, pool, schemaPath)
			if err != nil {
				return err
			}
			sum.Skipped = skipped
			if g.json {
				return printJSON(cmd.OutOrStdout(), sum)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "applied %s; chat tables: %d users, %d channels, %d members, %d messages, %d audit logs, %d files\n",
				schemaPath, sum.Rows["users"], sum.Rows["channels"], sum.Rows["channel_members"], sum.Rows["chat_messages"],
				sum.Rows["audit_logs"], sum.Rows["file_metadata"])
			fmt.Fprintln(cmd.OutOrStdout(), "also seeded: redis blacklist, elasticsearch indices, neo4j users, s3 objects (except skipped:", sum.Skipped, ")")
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

// seedOtherSystems gives every other job something real to do: blacklisted tokens in Redis,
// old multi-segment indices in Elasticsearch, the users mirrored into Neo4j (a few left out),
// and objects in S3 behind the file rows. A system the config does not name is skipped.
func seedOtherSystems(ctx context.Context, cfg *config.Config, pool *pgxpool.Pool, userIDs []int64, now time.Time) (skipped []string, err error) {
	rdb := app.OpenRedis(cfg.Redis)
	defer rdb.Close() //nolint:errcheck // short-lived client
	if err := demo.SeedRedis(ctx, rdb); err != nil {
		return nil, fmt.Errorf("seed redis: %w", err)
	}
	es, err := app.OpenElasticsearch(cfg.Elasticsearch)
	if err != nil {
		return nil, err
	}
	if es == nil {
		skipped = append(skipped, "elasticsearch")
	} else if err := demo.SeedElasticsearch(ctx, es, now); err != nil {
		return nil, fmt.Errorf("seed elasticsearch: %w", err)
	}
	neo, err := app.OpenNeo4j(cfg.Neo4j)
	if err != nil {
		return nil, err
	}
	if neo == nil {
		skipped = append(skipped, "neo4j")
	} else {
		defer neo.Close(ctx) //nolint:errcheck // short-lived driver
		if err := demo.SeedNeo4j(ctx, neo, userIDs); err != nil {
			return nil, fmt.Errorf("seed neo4j: %w", err)
		}
	}
	s3, err := app.NewS3Client(cfg.S3)
	if err != nil {
		return nil, err
	}
	if s3 == nil {
		skipped = append(skipped, "s3")
	} else if err := demo.SeedFiles(ctx, pool, s3, demo.FileBucket); err != nil {
		return nil, fmt.Errorf("seed s3 files: %w", err)
	}
	return skipped, nil
}
