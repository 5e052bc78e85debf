package demo

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The local stack's Postgres (deploy/local): the one database seed-demo writes to without
// being told by name.
const (
	LocalStackDatabase = "jobservice"
	LocalStackPort     = 55432
)

// ErrNotDemoDatabase is what CheckTarget returns when the database may not be seeded.
var ErrNotDemoDatabase = errors.New("refusing to seed")

// Target is the database a pool writes to, as the server reports it.
type Target struct {
	Database string
	Addr     string // inet_server_addr; empty over a Unix socket
	Port     int
	Schema   string
}

// IsLocalStack reports whether t is the local stack's database: its name and port, on a
// loopback address or a Unix socket.
func (t Target) IsLocalStack() bool {
	if t.Database != LocalStackDatabase || t.Port != LocalStackPort {
		return false
	}
	if t.Addr == "" {
		return true
	}
	ip, err := netip.ParseAddr(strings.Split(t.Addr, "/")[0])
	return err == nil && ip.IsLoopback()
}

func (t Target) String() string {
	addr := t.Addr
	if addr == "" {
		addr = "unix socket"
	}
	return fmt.Sprintf("database %q (schema %q) at %s port %d", t.Database, t.Schema, addr, t.Port)
}

// InspectTarget asks the server which database, address and schema pool writes to.
func InspectTarget(ctx context.Context, pool *pgxpool.Pool) (Target, error) {
	var t Target
	var addr *string
	var port *int32
	if err := pool.QueryRow(ctx, `SELECT current_database(), host(inet_server_addr()), inet_server_port(),
		COALESCE(current_schema(), '')`).Scan(&t.Database, &addr, &port, &t.Schema); err != nil {
		return t, fmt.Errorf("inspect target database: %w", err)
	}
	if addr != nil {
		t.Addr = *addr
	}
	if port != nil {
		t.Port = int(*port)
	} else {
		t.Port = LocalStackPort // a Unix socket reports none; the socket's server is local
	}
	return t, nil
}

// foreignRowChecks find chat rows the demo did not write: ids outside its ranges, or names
// not of its making. Fixed SQL; each counts at most one row.
var foreignRowChecks = []struct{ table, where string }{
	{"users", fmt.Sprintf(`id NOT BETWEEN 1 AND %d OR username !~ '^user[0-9]{3}$'`, Users)},
	{"channels", fmt.Sprintf(`id NOT BETWEEN 1 AND %d OR name !~ '^(group|direct)-[0-9]{2}$'`, Channels)},
	// The old month SeedOldMonth writes for the archive demo is on channels of its own.
	{"chat_messages", fmt.Sprintf(`channel_id NOT BETWEEN 1 AND %d AND channel_id NOT BETWEEN %d AND %d`,
		Channels, OldMonthChannelBase+1, OldMonthChannelBase+5)},
	// SeedFiles's files (the file GC's demo) have ids of their own, above fileIDBase.
	{"file_metadata", fmt.Sprintf(`id NOT BETWEEN 1 AND %d AND id NOT BETWEEN %d AND %d`,
		Files, fileIDBase+1, fileIDBase+int64(len(demoFiles)))},
}

// ForeignRows describes the chat rows in pool's schema that the demo did not write ("" when
// there are none, or no chat tables yet).
func ForeignRows(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var found []string
	for _, c := range foreignRowChecks {
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, c.table).Scan(&exists); err != nil {
			return "", fmt.Errorf("look for table %s: %w", c.table, err)
		}
		if !exists {
			continue
		}
		var any bool
		if err := pool.QueryRow(ctx, fmt.Sprintf(`SELECT EXISTS (SELECT 1 FROM %s WHERE %s)`, c.table, c.where)).Scan(&any); err != nil {
			return "", fmt.Errorf("look for foreign rows in %s: %w", c.table, err)
		}
		if any {
			found = append(found, c.table)
		}
	}
	if len(found) == 0 {
		return "", nil
	}
	return "rows the demo did not write in " + strings.Join(found, ", "), nil
}

// CheckTarget refuses to seed a database that is not the local stack's, or that holds chat
// rows the demo did not write, unless allowDatabase names it: the demo deletes and rewrites
// rows by id, which on a real platform's database would destroy data.
func CheckTarget(ctx context.Context, pool *pgxpool.Pool, allowDatabase string) (Target, error) {
	t, err := InspectTarget(ctx, pool)
	if err != nil {
		return t, err
	}
	if allowDatabase != "" {
		if allowDatabase != t.Database {
			return t, fmt.Errorf("%w: --allow-database %q does not name the target, %s", ErrNotDemoDatabase, allowDatabase, t)
		}
		return t, nil
	}
	if !t.IsLocalStack() {
		return t, fmt.Errorf("%w: %s is not the local stack's (database %q on a loopback port %d); "+
			"pass --allow-database %s if it really is a demo database", ErrNotDemoDatabase, t, LocalStackDatabase, LocalStackPort, t.Database)
	}
	foreign, err := ForeignRows(ctx, pool)
	if err != nil {
		return t, err
	}
	if foreign != "" {
		return t, fmt.Errorf("%w: %s holds %s; pass --allow-database %s to seed it anyway",
			ErrNotDemoDatabase, t, foreign, t.Database)
	}
	return t, nil
}
