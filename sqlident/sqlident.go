// Package sqlident checks the SQL identifiers that come from config before they are quoted
// with pgx.Identifier and become SQL: plain names only, so a config value can never carry
// quotes, spaces or a second statement, and errors name what was wrong.
package sqlident

import (
	"fmt"
	"regexp"
	"strings"
)

var plain = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Plain reports whether name is a plain identifier: [A-Za-z_][A-Za-z0-9_]*, at most 63
// characters (Postgres' limit).
func Plain(name string) bool { return plain.MatchString(name) }

// ValidateTable accepts "table" or "schema.table" made of plain identifiers.
func ValidateTable(name string) error {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return fmt.Errorf("table %q: at most schema.table", name)
	}
	for _, p := range parts {
		if !Plain(p) {
			return fmt.Errorf("table %q: %q is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*, at most 63)", name, p)
		}
	}
	return nil
}
