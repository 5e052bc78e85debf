package handlers

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/job"
)

func TestReportPeriods(t *testing.T) {
	t.Parallel()
	daily := &DailyStatsConfig{TimeZone: "Asia/Shanghai"}
	weekly := &GroupActivityConfig{TimeZone: "UTC"}
	sections := map[string]any{DailyStatsKind: daily, GroupActivityKind: weekly}
	shanghai, _ := time.LoadLocation("Asia/Shanghai")
	for _, tc := range []struct {
		name, job, params string
		ref               time.Time
		wantParams        string
		wantStart         time.Time
	}{
		{"the 01:00 fire reports the day before, in the zone", DailyStatsKind, `{}`,
			time.Date(2026, 11, 2, 1, 0, 0, 0, shanghai), `{"date":"2026-11-01"}`, time.Date(2026, 11, 1, 0, 0, 0, 0, shanghai)},
		{"an explicit date defines it", DailyStatsKind, `{"date":"2026-10-05"}`,
			time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC), `{"date":"2026-10-05"}`, time.Date(2026, 10, 5, 0, 0, 0, 0, shanghai)},
		{"a Monday fire ranks last week", GroupActivityKind, `{}`,
			time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC), `{"week":"2026-48"}`, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)},
		{"a job without a period stands for the instant", PartitionKind, `{}`,
			time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC), `{}`, time.Date(2026, 11, 30, 2, 0, 0, 0, time.UTC)},
	} {
		env, iv, err := job.Pin(sections, job.Envelope{Job: tc.job, Params: json.RawMessage(tc.params)}, tc.ref)
		require.NoError(t, err, tc.name)
		require.JSONEq(t, tc.wantParams, string(env.Params), tc.name)
		require.True(t, iv.Start.Equal(tc.wantStart), "%s: %s", tc.name, iv)
	}
	_, _, err := job.Pin(sections, job.Envelope{Job: GroupActivityKind, Params: json.RawMessage(`{"week":"2027-53"}`)}, time.Now())
	require.True(t, job.IsReject(err), "a week that does not exist: %v", err)

	days, err := job.Periods(sections, DailyStatsKind, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), nil)
	require.NoError(t, err)
	require.Len(t, days, 30)
	require.JSONEq(t, `{"date":"2026-11-30"}`, string(days[29]))
	weeks, err := job.Periods(sections, GroupActivityKind, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), nil)
	require.NoError(t, err)
	var labels []string
	for _, w := range weeks {
		var a GroupActivityArgs
		require.NoError(t, json.Unmarshal(w, &a))
		labels = append(labels, a.Week)
	}
	require.Equal(t, []string{"2026-44", "2026-45", "2026-46", "2026-47", "2026-48", "2026-49"}, labels)
	_, err = job.Periods(sections, PartitionKind, time.Now(), time.Now(), nil)
	require.ErrorIs(t, err, job.ErrNoPeriod)
	_, err = job.Periods(sections, DailyStatsKind, time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), nil)
	require.ErrorContains(t, err, "before")
}
