package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"

	"gopkg.in/yaml.v3"

	"github.com/chatplat/job-service/job"
)

// withPolicies lays each jobs.<kind> section of the file over its kind's default policy, so a
// job the file does not mention runs on its default schedule. Sections for kinds outside the
// table (test kinds registered in code) are kept as written; CheckJobsKnown judges them.
func withPolicies(jobs map[string]job.Spec, kinds []job.Definition) map[string]job.Spec {
	out := make(map[string]job.Spec, len(jobs)+len(kinds))
	for name, s := range jobs {
		out[name] = s
	}
	for _, k := range kinds {
		out[k.Kind()] = jobs[k.Kind()].Over(k.Policy())
	}
	return out
}

// loadSections decodes every handlers.<kind> section (unknown keys refused), fills its
// defaults with its job's time zone (the top-level one unless the job names its own), validates it, and checks each job's resolved policy
// against it: scheduled params decode and validate by the job's own rules. Every problem is
// returned, not the first.
func (c *Config) loadSections(kinds []job.Definition) []error {
	var errs []error
	known := make(map[string]bool, len(kinds))
	c.Sections = make(map[string]any, len(kinds))
	for _, k := range kinds {
		kind := k.Kind()
		known[kind] = true
		var decode func(any) error
		if node, ok := c.Handlers[kind]; ok {
			decode = strictDecoder(node)
		}
		// A section with a zone of its own follows its job's zone when it names none: the
		// job's time_zone, or the top-level one the job inherited.
		zone := c.zone()
		if s, ok := c.Jobs[kind]; ok && validZone(s.TimeZone) {
			zone = s.TimeZone
		}
		section, err := k.LoadSection(decode, zone)
		var de *decodeError
		switch {
		case errors.As(err, &de):
			errs = append(errs, fmt.Errorf("config: handlers.%s: %w", kind, de.err))
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("config: handlers.%s.%w", kind, err))
			continue
		}
		c.Sections[kind] = section
		if err := k.CheckSpec(c.Jobs[kind], section); err != nil {
			errs = append(errs, fmt.Errorf("config: jobs.%s.%w", kind, err))
		}
	}
	for _, name := range sortedKeys(c.Handlers) {
		if !known[name] {
			errs = append(errs, fmt.Errorf("config: handlers.%s: no such job kind", name))
		}
	}
	return errs
}

// strictDecoder decodes one section the way the whole file is decoded: a misspelt key is an
// error (yaml.Node.Decode alone would ignore it).
func strictDecoder(node yaml.Node) func(any) error {
	return func(dst any) error {
		raw, err := yaml.Marshal(&node)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(dst); err != nil && !errors.Is(err, io.EOF) {
			return &decodeError{err: err}
		}
		return nil
	}
}

// decodeError is a section that does not decode, as opposed to one that does not validate
// (whose error starts with the key at fault).
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

// Scheduled returns the kinds whose schedule is on, sorted.
func (c Config) Scheduled() []string {
	var out []string
	for _, name := range sortedKeys(c.Jobs) {
		if c.Jobs[name].IsEnabled() {
			out = append(out, name)
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
