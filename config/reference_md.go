package config

import (
	"fmt"
	"io"
	"strings"

	"github.com/chatplat/job-service/job"
)

// WriteReference writes the configuration reference, in Markdown, for a build whose jobs are
// kinds: every key with its type, default and meaning, the environment rule, the default
// policy of each job, and the deprecated keys and variables with what replaces them.
// docs/configuration.md is its output (make config-docs).
func WriteReference(w io.Writer, kinds []job.Definition) error {
	keys := Keys(kinds, false)
	by, total := EngineKeys(keys)
	var b strings.Builder
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("Generated from the config structs by `job-service config reference` (`make config-docs`);\n")
	b.WriteString("do not edit by hand. `job-service config check --config FILE` validates a file.\n\n")
	b.WriteString("## Environment\n\n")
	b.WriteString("Every key can be set from the environment: `" + EnvPrefix + "` and the key's path upper-cased,\n")
	b.WriteString("its levels joined by a double underscore. `redis.addr` is `JOBSERVICE_REDIS__ADDR`,\n")
	b.WriteString("`alerts.smtp.password` is `JOBSERVICE_ALERTS__SMTP__PASSWORD`, `jobs.file_gc.shards` is\n")
	b.WriteString("`JOBSERVICE_JOBS__FILE_GC__SHARDS`. A set, non-empty variable wins over the file. Lists of\n")
	b.WriteString("values are comma-separated (`JOBSERVICE_ROCKETMQ__NAME_SERVERS=ns-0:9876,ns-1:9876`); maps\n")
	b.WriteString("and lists of sections are YAML (`JOBSERVICE_JOBS__PG_PARTITION__PARAMS='{premake: 6}'`).\n")
	b.WriteString("Keys inside list elements have no variable of their own: set the whole list. A `JOBSERVICE_`\n")
	b.WriteString("variable that sets no key is named in a warning at start and by `config check`.\n\n")
	fmt.Fprintf(&b, "Engine keys (ticker, consumer, rocketmq and each job's run policy): %d (ticker %d, consumer %d,\nrocketmq %d, jobs.<kind> %d).\n",
		total, by["ticker"], by["consumer"], by["rocketmq"], by["jobs"])
	var deprecated []Key
	for _, s := range sortedSections(keys) {
		title := "`" + s + "`"
		if s == "" {
			title = "Top level"
		}
		fmt.Fprintf(&b, "\n## %s\n\n| key | type | default | meaning |\n|---|---|---|---|\n", title)
		for _, k := range keys {
			if section(k.Path) != s {
				continue
			}
			if k.Deprecated != "" {
				deprecated = append(deprecated, k)
				continue
			}
			def := ""
			if k.Default != "" {
				def = "`" + cell(k.Default) + "`"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", k.Path, k.Type, def, cell(k.Meaning))
		}
	}
	b.WriteString("\n## Default policy of each job\n\nWhat `jobs.<kind>` overrides, key by key. `time_zone` is the top-level one unless the job names its own.\n\n")
	b.WriteString("| job | schedule | shards | timeout | max_attempts | misfire | overlap |\n|---|---|---|---|---|---|---|\n")
	for _, k := range kinds {
		p := k.Policy().WithDefaults()
		sched := p.Schedule
		if sched == "" {
			sched = "(forced runs only)"
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | %d | %s | %d | %s | %s |\n", k.Kind(), sched, p.Shards,
			shortDuration(p.Timeout), p.MaxAttempts, p.Misfire, p.Overlap)
	}
	b.WriteString("\n## Deprecated keys\n\nThey still load in this release, with a warning at start and in `config check`.\n\n| key | instead |\n|---|---|\n")
	for _, k := range deprecated {
		fmt.Fprintf(&b, "| `%s` | %s |\n", k.Path, cell(k.Deprecated))
	}
	b.WriteString("\n## Deprecated environment variables\n\nThey still work in this release, with a warning naming the new variable; the new one wins when both are set.\n\n| variable | instead |\n|---|---|\n")
	for _, d := range deprecatedEnv {
		fmt.Fprintf(&b, "| `%s` | `%s` |\n", d.old, envName(d.path))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func envName(path string) string {
	return Key{Path: path, value: valueScalar}.Env()
}
