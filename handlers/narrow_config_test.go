package handlers_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Scheduled params, like forced runs' params, may only narrow the configured patterns and
// tables and never lower min_age_days: config check and the node's start refuse the rest.
func TestScheduledParamsOnlyNarrow(t *testing.T) {
	t.Parallel()
	refused := map[string]string{
		"jobs: {es_forcemerge: {params: {patterns: [audit-old, other-*]}}}\n": "config: jobs.es_forcemerge.params.patterns: \"other-*\" is not within",
		"jobs: {es_forcemerge: {params: {min_age_days: 1}}}\n":                "config: jobs.es_forcemerge.params.min_age_days: 1 is below the configured 7",
		"jobs: {pg_partition: {params: {tables: [chat_messages, users]}}}\n":  "config: jobs.pg_partition.params.tables: \"users\" is not one of the configured tables",
	}
	for yaml, want := range refused {
		_, err := parse(base+yaml, nil)
		require.ErrorContains(t, err, want, yaml)
	}
	for _, yaml := range []string{
		"jobs: {es_forcemerge: {params: {patterns: [chat-messages-2026-*], min_age_days: 30}}}\n",
		"jobs: {pg_partition: {params: {tables: [chat_inbox]}}}\n",
	} {
		_, err := parse(base+yaml, nil)
		require.NoError(t, err, yaml)
	}
}
