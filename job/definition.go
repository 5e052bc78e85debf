package job

import (
	"errors"
	"fmt"
)

// Section is a handler's config section (handlers.<kind> in the file): a struct whose
// WithDefaults fills unset fields and whose Validate names the bad key relative to the section.
type Section[C any] interface {
	WithDefaults() C
	Validate() error
}

// zoned is a section with a time zone of its own that, when unset, follows the file's
// top-level time_zone (daily_stats' and group_activity's report days).
type zoned[C any] interface {
	WithTimeZone(zone string) C
}

// specChecker is a section that constrains its job's run policy, for example a timeout that
// must exceed a limit of the section's own.
type specChecker interface {
	CheckSpec(s Spec) error
}

// Definition describes a job kind to the config and to config check, without its backend:
// its name, its default run policy, its config section and its params.
type Definition interface {
	// Kind is the job kind, the key under jobs: and handlers:.
	Kind() string
	// Policy is the default run policy; the jobs.<kind> section of the file overrides it
	// field by field.
	Policy() Spec
	// LoadSection decodes the kind's handlers.<kind> section with decode (nil when the file
	// has none), fills its defaults (zone is the file's time_zone), validates it and returns
	// a pointer to it.
	LoadSection(decode func(dst any) error, zone string) (any, error)
	// CheckSpec checks a resolved run policy against the section LoadSection returned:
	// scheduled params decode and validate as the handler's args, and the section's own
	// limits hold (es_forcemerge's timeout above its index_timeout).
	CheckSpec(s Spec, section any) error
}

// Def is the Definition of a kind whose handler takes args T and whose section is C.
type Def[C Section[C], T any] struct {
	kind   string
	policy Spec
}

// Define returns the definition of kind: a handler taking args T, configured by C, scheduled
// by default as policy says.
func Define[C Section[C], T any](kind string, policy Spec) Def[C, T] {
	return Def[C, T]{kind: kind, policy: policy}
}

// Kind implements Definition.
func (d Def[C, T]) Kind() string { return d.kind }

// Policy implements Definition.
func (d Def[C, T]) Policy() Spec { return d.policy }

// LoadSection implements Definition.
func (d Def[C, T]) LoadSection(decode func(dst any) error, zone string) (any, error) {
	var c C
	if decode != nil {
		if err := decode(&c); err != nil {
			return nil, err
		}
	}
	if z, ok := any(c).(zoned[C]); ok && zone != "" {
		c = z.WithTimeZone(zone)
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// CheckSpec implements Definition.
func (d Def[C, T]) CheckSpec(s Spec, section any) error {
	if _, err := DecodeArgs[T](s.ParamsJSON()); err != nil {
		var r *RejectError
		if errors.As(err, &r) {
			return fmt.Errorf("params: %s", r.Reason)
		}
		return fmt.Errorf("params: %w", err)
	}
	if c, ok := section.(*C); ok && c != nil {
		if sc, ok := any(*c).(specChecker); ok {
			return sc.CheckSpec(s)
		}
	}
	return nil
}

// SectionOf returns the section LoadSection returned for kind (a pointer: changes stick), or
// C's defaults when sections has none.
func SectionOf[C Section[C]](sections map[string]any, kind string) *C {
	if c, ok := sections[kind].(*C); ok && c != nil {
		return c
	}
	var zero C
	c := zero.WithDefaults()
	return &c
}

// SectionDefaults returns the section C with its defaults filled, for the configuration
// reference.
func (d Def[C, T]) SectionDefaults() any {
	var c C
	return c.WithDefaults()
}
