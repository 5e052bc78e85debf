package handlers

import (
	"fmt"
	"slices"
)

// Run parameters may narrow what a destructive or schema-changing job touches, never widen
// it: config is what operators reviewed, and a manual run (or a scheduled params block) that
// reached past it would merge, block or partition what nobody agreed to. These checks run in
// the handler, where the config is known, and fail the run before it touches anything.

// globWithin reports whether every name the glob p matches is matched by the glob c ('*' is
// the only wildcard; every other character is literal). A '*' of c may absorb any part of p,
// including p's own '*'; a literal of c matches only the same literal of p. That is sound: a
// true answer proves the inclusion. It may say false for exotic equivalent pairs, which then
// have to be written the way config writes them.
func globWithin(p, c string) bool {
	// within[i][j]: p[i:] is within c[j:].
	within := make([][]bool, len(p)+1)
	for i := range within {
		within[i] = make([]bool, len(c)+1)
	}
	within[len(p)][len(c)] = true
	for j := len(c) - 1; j >= 0 && c[j] == '*'; j-- {
		within[len(p)][j] = true
	}
	for i := len(p) - 1; i >= 0; i-- {
		for j := len(c) - 1; j >= 0; j-- {
			switch {
			case c[j] == '*':
				within[i][j] = within[i][j+1] || within[i+1][j]
			case p[i] == '*':
				within[i][j] = false
			default:
				within[i][j] = p[i] == c[j] && within[i+1][j+1]
			}
		}
	}
	return within[0][0]
}

// narrowPatterns checks that every pattern of a run's params lies within a configured one.
func narrowPatterns(params, configured []string) error {
	for _, p := range params {
		if !slices.ContainsFunc(configured, func(c string) bool { return globWithin(p, c) }) {
			return fmt.Errorf("patterns: %q is not within the configured patterns %v (params may only narrow them)", p, configured)
		}
	}
	return nil
}

// narrowTables checks that every table of a run's params is a configured one.
func narrowTables(params, configured []string) error {
	for _, t := range params {
		if !slices.Contains(configured, t) {
			return fmt.Errorf("tables: %q is not one of the configured tables %v (params may only narrow them)", t, configured)
		}
	}
	return nil
}

// narrowArgs refuses params that widen the config: patterns must lie within the configured
// ones and min_age_days may only be raised.
func (c ESForceMergeConfig) narrowArgs(a *ESForceMergeArgs) error {
	if err := narrowPatterns(a.Patterns, c.Patterns); err != nil {
		return err
	}
	if a.MinAgeDays != nil && c.MinAgeDays != nil && *a.MinAgeDays < *c.MinAgeDays {
		return fmt.Errorf("min_age_days: %d is below the configured %d (params may only raise it)",
			*a.MinAgeDays, *c.MinAgeDays)
	}
	return nil
}

// CheckArgs refuses params that widen the config (see narrowArgs).
func (h *ESForceMerge) CheckArgs(a *ESForceMergeArgs) error { return h.cfg.narrowArgs(a) }
