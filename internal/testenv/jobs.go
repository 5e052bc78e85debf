package testenv

import (
	"regexp"
	"strings"
)

// OnlyTheseJobs returns the body of a jobs section (entries indented by two spaces) that
// keeps jobsYAML and turns off the default schedules of the kinds it does not mention, so a
// test node with a ticker runs only what the test schedules. kinds is the table's
// (handlers.Kinds()).
func OnlyTheseJobs(jobsYAML string, kinds []string) string {
	body := strings.TrimRight(jobsYAML, "\n")
	if strings.TrimSpace(body) == "{}" {
		body = ""
	}
	var b strings.Builder
	if body != "" {
		b.WriteString(body)
		b.WriteString("\n")
	}
	for _, k := range kinds {
		if regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(k) + `:`).MatchString(body) {
			continue
		}
		b.WriteString("  " + k + ": {enabled: false}\n")
	}
	return b.String()
}
