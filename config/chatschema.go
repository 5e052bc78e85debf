package config

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/chatplat/job-service/job"
)

// ChatSchema names the chat platform's tables and columns the jobs read, once for all of
// them (chat_schema in the file). A handler field tagged `chat:"<table>.<column>"` takes its
// value from here unless the handler's own section sets it (deprecated, with a warning).
// Defaults match deploy/local/chat_schema.sql.
type ChatSchema struct {
	// Messages is the chat messages table (msg_gap_check, group_activity, daily_stats).
	Messages ChatMessages `yaml:"messages"`
	// Users is the users table (daily_stats, graph_consistency).
	Users ChatUsers `yaml:"users"`
	// Channels is the channels table (group_activity).
	Channels ChatChannels `yaml:"channels"`
	// AuditLogs is the API audit log, one row per call (daily_stats).
	AuditLogs ChatAuditLogs `yaml:"audit_logs"`
}

// ChatMessages names the messages table and its columns.
type ChatMessages struct {
	// Table is "table" or "schema.table", range-partitioned by created_at.
	Table string `yaml:"table"`
	// ChannelID is the column of the message's channel.
	ChannelID string `yaml:"channel_id"`
	// SenderID is the column of the message's sender.
	SenderID string `yaml:"sender_id"`
	// Seq is the column of the per-channel sequence number.
	Seq string `yaml:"seq"`
	// CreatedAt is the column of the message's creation time.
	CreatedAt string `yaml:"created_at"`
	// ReplyTo is the column that says a message answers another; "-" when there is none.
	ReplyTo string `yaml:"reply_to"`
}

// ChatUsers names the users table and its columns.
type ChatUsers struct {
	// Table is "table" or "schema.table".
	Table string `yaml:"table"`
	// ID is the users' bigint key column.
	ID string `yaml:"id"`
	// CreatedAt is the column of the user's creation time.
	CreatedAt string `yaml:"created_at"`
	// DeletedAt is the soft-delete column (NULL = live); "-" for a table without soft deletes.
	DeletedAt string `yaml:"deleted_at"`
}

// ChatChannels names the channels table and how a group channel is told from a direct one.
type ChatChannels struct {
	// Table is "table" or "schema.table".
	Table string `yaml:"table"`
	// ID is the channels' key column.
	ID string `yaml:"id"`
	// Kind is the column that tells group channels from direct ones.
	Kind string `yaml:"kind"`
	// GroupKind is the kind value of group channels.
	GroupKind int `yaml:"group_kind"`
}

// ChatAuditLogs names the audit log table and its columns.
type ChatAuditLogs struct {
	// Table is "table" or "schema.table".
	Table string `yaml:"table"`
	// UserID is the column of the caller.
	UserID string `yaml:"user_id"`
	// CreatedAt is the column of the call's time.
	CreatedAt string `yaml:"created_at"`
}

// WithDefaults fills unset fields with the names of deploy/local/chat_schema.sql.
func (s ChatSchema) WithDefaults() ChatSchema {
	def := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	m := &s.Messages
	def(&m.Table, "chat_messages")
	def(&m.ChannelID, "channel_id")
	def(&m.SenderID, "sender_id")
	def(&m.Seq, "seq")
	def(&m.CreatedAt, "created_at")
	def(&m.ReplyTo, "-")
	u := &s.Users
	def(&u.Table, "users")
	def(&u.ID, "id")
	def(&u.CreatedAt, "created_at")
	def(&u.DeletedAt, "deleted_at")
	c := &s.Channels
	def(&c.Table, "channels")
	def(&c.ID, "id")
	def(&c.Kind, "kind")
	if c.GroupKind == 0 {
		c.GroupKind = 2
	}
	a := &s.AuditLogs
	def(&a.Table, "audit_logs")
	def(&a.UserID, "user_id")
	def(&a.CreatedAt, "created_at")
	return s
}

// withChatSchema writes into each handler section of root the chat_schema values its
// `chat:"..."` fields take, where the section does not set them itself. The handlers then
// validate the names as their own.
func withChatSchema(root *yaml.Node, kinds []job.Definition) error {
	var file struct {
		ChatSchema ChatSchema `yaml:"chat_schema"`
	}
	if root.Kind == yaml.DocumentNode {
		if err := root.Decode(&file); err != nil {
			return fmt.Errorf("config: chat_schema: %w", err)
		}
	}
	var schema yaml.Node
	if err := schema.Encode(file.ChatSchema.WithDefaults()); err != nil {
		return fmt.Errorf("config: chat_schema: %w", err)
	}
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{&schema}}
	for _, k := range kinds {
		d, ok := k.(sectionDefaulter)
		if !ok {
			continue
		}
		for _, f := range chatFields(reflect.TypeOf(d.SectionDefaults()), nil) {
			path := append([]string{"handlers", k.Kind()}, f.path...)
			if lookup(root, path) != nil {
				continue
			}
			v := lookup(doc, strings.Split(f.schema, "."))
			if v == nil {
				return fmt.Errorf("config: handlers.%s.%s: chat_schema has no %s", k.Kind(), strings.Join(f.path, "."), f.schema)
			}
			setPath(root, path, v)
		}
	}
	return nil
}

type chatField struct {
	path   []string // within the handler's section
	schema string   // within chat_schema
}

// chatFields lists the fields of a section type, at any depth, tagged `chat:"..."`.
func chatFields(t reflect.Type, prefix []string) []chatField {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []chatField
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		path := append(append([]string{}, prefix...), name)
		if s := f.Tag.Get("chat"); s != "" {
			out = append(out, chatField{path: path, schema: s})
			continue
		}
		out = append(out, chatFields(f.Type, path)...)
	}
	return out
}
