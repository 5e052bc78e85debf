// Package demo fills the local stack with small, realistic data so every job has something
// real to do under `make run` (`jobctl seed-demo`). Every seeder is repeatable: running it
// again leaves the same number of rows, objects and keys, with timestamps moved to the new
// "now".
package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/chatplat/job-service/handlers"
	"github.com/chatplat/job-service/job"
)

// The demo's id ranges and shape. Ids start at 1: the demo owns the local database.
const (
	Users          = 200
	NewUsers       = 15 // of Users, created yesterday (UTC)
	Channels       = 20
	DirectChannels = 4 // channels 1..4 are direct (kind 1); the rest are groups (kind 2)
	// GapChannel has the one persistent seq gap msg_gap_check must report: seq GapSeq is
	// missing between messages created 33 and 29 minutes before the seed's now.
	GapChannel = 5
	Files      = 80
	// FileBucket is the bucket file_metadata rows point at; object paths are
	// files/<hash[:2]>/<hash> with hash = FileHash(id).
	FileBucket = "chat-files"
	// MessageDays is how far back messages go.
	MessageDays = 10
)

// File id ranges by state, for the file GC demo.
const (
	FilesActive     = 50 // 1..50: status 1, referenced (41..50 created yesterday)
	FilesCollect    = 62 // 51..62: status 2, ref_count 0, deleted 2..9 days ago: file_gc removes them
	FilesInGrace    = 67 // 63..67: status 2, ref_count 0, deleted 2 h ago: inside the grace period
	FilesReferenced = 72 // 68..72: status 2 but ref_count 1 (re-referenced): must survive
	// 73..80: status 1, created yesterday.
)

var actions = []string{"GET /api/messages", "POST /api/messages", "GET /api/channels", "POST /api/files",
	"GET /api/users/me", "PUT /api/read", "GET /api/search"}

// FileHash is the content hash of demo file id.
func FileHash(id int64) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "demo-file-%d", id))
	return hex.EncodeToString(sum[:])
}

// SeedChat fills the chat tables (deploy/local/chat_schema.sql, already applied) with demo
// data relative to now and returns the ids of every user row. It first makes sure monthly
// partitions cover the seeded span, so rows land in them and not in the DEFAULT partitions
// (where pg_partition would later find them stuck). The rows are replaced in one
// transaction: the demo's channels' messages and members and its users' audit logs are
// deleted and written again, users, channels and files are upserted.
func SeedChat(ctx context.Context, pool *pgxpool.Pool, now time.Time) (userIDs []int64, err error) {
	now = now.UTC().Truncate(time.Millisecond)
	if err := ensurePartitions(ctx, pool, now); err != nil {
		return nil, err
	}
	d := generate(now)
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	for _, q := range []string{
		`DELETE FROM chat_messages WHERE channel_id BETWEEN 1 AND $1`,
		`DELETE FROM channel_members WHERE channel_id BETWEEN 1 AND $1`,
	} {
		if _, err := tx.Exec(ctx, q, Channels); err != nil {
			return nil, fmt.Errorf("clear demo rows: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM audit_logs WHERE user_id BETWEEN 1 AND $1`, Users); err != nil {
		return nil, fmt.Errorf("clear demo audit logs: %w", err)
	}
	if err := d.write(ctx, tx); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	return d.userIDs, nil
}

// ensurePartitions runs the pg_partition handler with its clock set back to the oldest
// seeded day, so it creates that month through three months past now.
func ensurePartitions(ctx context.Context, pool *pgxpool.Pool, now time.Time) error {
	oldest := now.AddDate(0, 0, -(MessageDays + 1))
	months := (now.Year()-oldest.Year())*12 + int(now.Month()-oldest.Month())
	p, err := handlers.NewPartition(pool, handlers.PartitionConfig{
		Tables:  []string{"chat_messages", "chat_inbox", "audit_logs"},
		Premake: months + 3,
	}, func() time.Time { return oldest }, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	run := &job.Run[handlers.PartitionArgs]{Envelope: job.Envelope{Job: handlers.PartitionKind, RunKey: "seed-demo"}}
	if _, err := p.Run(ctx, run); err != nil {
		return fmt.Errorf("monthly partitions: %w", err)
	}
	return nil
}

type user struct {
	id               int64
	name             string
	created, deleted *time.Time
}

type channel struct {
	id      int64
	name    string
	kind    int16
	created time.Time
	members []int64
}

type dataset struct {
	userIDs  []int64
	users    []user
	channels []channel
	messages [][]any // id, channel_id, seq, sender_id, body, created_at
	calls    [][]any // user_id, action, created_at
	files    [][]any // id, hash, bucket, path, size, ref_count, status, created_at, updated_at
}

// generate builds the dataset from a fixed seed, so every run has the same shape.
func generate(now time.Time) *dataset {
	rng := rand.New(rand.NewPCG(20261126, 1))
	d := &dataset{}
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	yesterday := today.AddDate(0, 0, -1)
	within := func(from time.Time, span time.Duration) time.Time {
		return from.Add(time.Duration(rng.Int64N(int64(span)))).Truncate(time.Millisecond)
	}
	var alive []int64
	for i := int64(1); i <= Users; i++ {
		u := user{id: i, name: fmt.Sprintf("user%03d", i)}
		created := within(now.AddDate(0, 0, -90), 88*24*time.Hour)
		switch {
		case i > Users-NewUsers:
			created = within(yesterday, 24*time.Hour)
		case i%50 == 0: // a few accounts deleted three days ago
			created = now.AddDate(0, 0, -60)
			deleted := now.AddDate(0, 0, -3)
			u.deleted = &deleted
		}
		u.created = &created
		if u.deleted == nil {
			alive = append(alive, i)
		}
		d.users = append(d.users, u)
		d.userIDs = append(d.userIDs, i)
	}

	var msgID int64
	for c := int64(1); c <= Channels; c++ {
		ch := channel{id: c, kind: 2, created: now.AddDate(0, 0, -60), name: fmt.Sprintf("group-%02d", c)}
		n := 3 + rng.IntN(50)
		if c <= DirectChannels {
			ch.kind, ch.name, n = 1, fmt.Sprintf("direct-%02d", c), 2
		}
		perm := rng.Perm(len(alive))
		for _, k := range perm[:n] {
			ch.members = append(ch.members, alive[k])
		}
		slices.Sort(ch.members)
		d.channels = append(d.channels, ch)

		// Messages spread over the last days, seq in time order. The gap channel's ordinary
		// messages stop an hour ago; its tail with the gap follows.
		count := 20 + rng.IntN(40)
		if ch.kind == 2 {
			count = len(ch.members) * (3 + rng.IntN(6))
		}
		end := now.Add(-2 * time.Minute)
		if c == GapChannel {
			end = now.Add(-time.Hour)
		}
		start := now.AddDate(0, 0, -MessageDays)
		times := make([]time.Time, count)
		for i := range times {
			times[i] = within(start, end.Sub(start))
		}
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		if c == GapChannel {
			for _, ago := range []time.Duration{35, 33, 31, 29, 27} {
				times = append(times, now.Add(-ago*time.Minute))
			}
		}
		for i, at := range times {
			seq := int64(i + 1)
			if c == GapChannel && seq == GapSeq(count) {
				continue // never committed: the persistent gap
			}
			msgID++
			sender := ch.members[rng.IntN(len(ch.members))]
			d.messages = append(d.messages, []any{msgID, c, seq, sender,
				fmt.Sprintf("message %d in %s", seq, ch.name), at})
		}
	}

	// API calls: most live users yesterday, with one busy second; fewer so far today.
	for _, u := range alive {
		if rng.IntN(10) < 7 {
			for range 1 + rng.IntN(15) {
				d.calls = append(d.calls, []any{u, actions[rng.IntN(len(actions))], within(yesterday, 24*time.Hour)})
			}
		}
		if rng.IntN(10) < 4 && now.After(today) {
			for range 1 + rng.IntN(8) {
				d.calls = append(d.calls, []any{u, actions[rng.IntN(len(actions))], within(today, now.Sub(today))})
			}
		}
	}
	burst := yesterday.Add(14*time.Hour + 7*time.Second)
	for i := range 40 {
		d.calls = append(d.calls, []any{alive[rng.IntN(len(alive))], "GET /api/messages",
			burst.Add(time.Duration(i) * 20 * time.Millisecond)})
	}

	for id := int64(1); id <= Files; id++ {
		hash := FileHash(id)
		size := 1024 + rng.Int64N(20<<20)
		created := within(now.AddDate(0, 0, -MessageDays), time.Duration(MessageDays-1)*24*time.Hour)
		updated := created
		ref, status := int64(1+rng.IntN(3)), int16(1)
		switch {
		case id > FilesReferenced || (id > 40 && id <= FilesActive):
			created = within(yesterday, 24*time.Hour)
			updated = created
		case id <= FilesActive:
		case id <= FilesCollect:
			created = now.AddDate(0, 0, -MessageDays)
			updated = now.AddDate(0, 0, -int(2+id%8))
			ref, status = 0, 2
		case id <= FilesInGrace:
			updated = now.Add(-2 * time.Hour)
			created = updated.AddDate(0, 0, -1)
			ref, status = 0, 2
		default: // deleted, then shared again: ref_count went back to 1
			updated = now.AddDate(0, 0, -3)
			created = updated.AddDate(0, 0, -1)
			ref, status = 1, 2
		}
		d.files = append(d.files, []any{id, hash, FileBucket, "files/" + hash[:2] + "/" + hash, size, ref, status, created, updated})
	}
	return d
}

// GapSeq is the seq missing in GapChannel, given the count of its ordinary messages: the
// third of the five tail messages (created 31 minutes before the seed's now).
func GapSeq(ordinary int) int64 { return int64(ordinary) + 3 }

func (d *dataset) write(ctx context.Context, tx pgx.Tx) error {
	var ids []int64
	var names []string
	var created, deleted []*time.Time
	for _, u := range d.users {
		ids, names, created, deleted = append(ids, u.id), append(names, u.name), append(created, u.created), append(deleted, u.deleted)
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO users (id, username, created_at, deleted_at)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::timestamptz[])
		ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, created_at = EXCLUDED.created_at,
			deleted_at = EXCLUDED.deleted_at`, ids, names, created, deleted); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	var chIDs []int64
	var chNames []string
	var kinds []int16
	var chCreated []time.Time
	var memCh, memUser []int64
	for _, c := range d.channels {
		chIDs, chNames, kinds, chCreated = append(chIDs, c.id), append(chNames, c.name), append(kinds, c.kind), append(chCreated, c.created)
		for _, m := range c.members {
			memCh, memUser = append(memCh, c.id), append(memUser, m)
		}
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO channels (id, name, kind, created_at)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::smallint[], $4::timestamptz[])
		ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, kind = EXCLUDED.kind, created_at = EXCLUDED.created_at`,
		chIDs, chNames, kinds, chCreated); err != nil {
		return fmt.Errorf("channels: %w", err)
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO channel_members (channel_id, user_id, joined_at)
		SELECT c, u, $3 FROM unnest($1::bigint[], $2::bigint[]) AS m(c, u)`,
		memCh, memUser, chCreated[0]); err != nil {
		return fmt.Errorf("channel members: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"chat_messages"},
		[]string{"id", "channel_id", "seq", "sender_id", "body", "created_at"}, pgx.CopyFromRows(d.messages)); err != nil {
		return fmt.Errorf("chat messages: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_logs"},
		[]string{"user_id", "action", "created_at"}, pgx.CopyFromRows(d.calls)); err != nil {
		return fmt.Errorf("audit logs: %w", err)
	}
	cols := []string{"id", "file_hash", "bucket", "object_path", "size_bytes", "ref_count", "status", "created_at", "updated_at"}
	for _, f := range d.files {
		if _, err := tx.Exec(ctx, `
			INSERT INTO file_metadata (`+strings.Join(cols, ", ")+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
			ON CONFLICT (id) DO UPDATE SET file_hash = EXCLUDED.file_hash, bucket = EXCLUDED.bucket,
				object_path = EXCLUDED.object_path, size_bytes = EXCLUDED.size_bytes, ref_count = EXCLUDED.ref_count,
				status = EXCLUDED.status, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at`, f...); err != nil {
			return fmt.Errorf("file %v: %w", f[0], err)
		}
	}
	return nil
}
