package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/config"
	"github.com/chatplat/job-service/ledger"
)

// finishingRuns is a RunController whose run finished between the server's own status read
// and its read of the lines: the page holds the run's built last lines and says so.
type finishingRuns struct{ RunController }

func (finishingRuns) RunLogs(_ context.Context, id, _ int64, _ int) (ledger.RunLogPage, error) {
	return ledger.RunLogPage{RunID: id, RunStatus: ledger.StatusSucceeded, Lines: []ledger.LogLine{
		{RunID: id, Attempt: 1, Seq: 1, Msg: "run started"}, {RunID: id, Attempt: 1, Seq: 2, Msg: "run finished"}}}, nil
}

// A run that finishes while its log is read: the lines built for it come with the page, whose
// cursor does not move; the answer must say done, or a follower asks again and shows them twice.
func TestRunLogsAreDoneByTheStatusReadWithTheLines(t *testing.T) {
	t.Parallel()
	s := time.Now()
	fl := &fakeLedger{paused: map[string]string{}, runs: []ledger.Run{{ID: 7, Job: "probe", Status: ledger.StatusRunning,
		Attempt: 1, StartedAt: &s, ShardTotal: 1}}}
	srv := New(config.AdminConfig{Token: testToken}, Deps{Node: "n1", Ledger: fl, Runs: finishingRuns{}, Now: time.Now})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	code, body := do(t, http.MethodGet, ts.URL+"/api/runs/7/logs", testToken, "")
	require.Equal(t, http.StatusOK, code, body)
	var resp LogsResponse
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	require.Len(t, resp.Lines, 2)
	require.Equal(t, ledger.StatusSucceeded, resp.Status)
	require.True(t, resp.Done, "the page ends the log")
}
