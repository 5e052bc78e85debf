package admin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chatplat/job-service/archive"
	"github.com/chatplat/job-service/config"
)

func TestArchivesPage(t *testing.T) {
	t.Parallel()
	rows, bytes, run := int64(5000), int64(81234), int64(17)
	at := time.Date(2026, 11, 26, 4, 30, 0, 0, time.UTC)
	var got archive.ListFilter
	srv := New(config.AdminConfig{Listen: "127.0.0.1:0"}, Deps{
		Node: "n1", Ledger: &fakeLedger{}, Kinds: func() []string { return nil },
		Archives: func(_ context.Context, f archive.ListFilter) ([]*archive.Entry, error) {
			got = f
			return []*archive.Entry{
				{ParentSchema: "public", ParentTable: "chat_messages", Partition: "chat_messages_2025_09",
					RangeFrom: "2025-09-01 00:00:00+00", RangeTo: "2025-10-01 00:00:00+00", State: archive.StateDropped,
					Bucket: "chat-archive", ObjectKey: "pg/public/chat_messages/chat_messages_2025_09.csv.gz",
					Rows: &rows, Bytes: &bytes, RunID: &run, UpdatedAt: at, ContentChecksum: "rowsum-sha256:abc"},
				{ParentSchema: "public", ParentTable: "audit_logs", Partition: "audit_logs_2026_07",
					State: archive.StateConflict, Error: "changed <b>after</b> export", UpdatedAt: at},
			}, nil
		},
	})
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)

	code, body := do(t, http.MethodGet, ts.URL+"/archives?state=dropped&table=chat_messages", "", "")
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, archive.ListFilter{Table: "chat_messages", State: archive.StateDropped}, got)
	require.Contains(t, body, `data-partition="chat_messages_2025_09" data-state="dropped"`)
	require.Contains(t, body, "s3://chat-archive/pg/public/chat_messages/chat_messages_2025_09.csv.gz")
	require.Contains(t, body, `<td class="num">5000</td>`)
	require.Contains(t, body, `<a href="/runs/17">17</a>`)
	require.Contains(t, body, "changed &lt;b&gt;after&lt;/b&gt; export", "errors are escaped")
	require.Contains(t, body, `<option value="dropped" selected>`)

	// The index links to it.
	code, body = do(t, http.MethodGet, ts.URL+"/", "", "")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `href="/archives"`)
}

func TestArchivesPageWithoutManifest(t *testing.T) {
	t.Parallel()
	ts, _, _ := newTestServer(t, config.AdminConfig{Listen: "127.0.0.1:0"})
	code, _ := do(t, http.MethodGet, ts.URL+"/archives", "", "")
	require.Equal(t, http.StatusNotFound, code)
}
