package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/chatplat/job-service/admin"
	"github.com/chatplat/job-service/ledger"
)

// Force a run from Go through any node's admin API, then read the run's result from the
// ledger through the same API: what jobctl --server does. Writes need the node's admin.token;
// reads need it only with admin.protect_reads. (No Output: it needs a running node.)
func Example_forceARunAndReadItsResult() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	base, token := "http://127.0.0.1:8080", os.Getenv("JOBSERVICE_ADMIN_TOKEN")
	call := func(method, path string, body, out any) error {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(b))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			return fmt.Errorf("%s %s: %s", method, path, resp.Status)
		}
		return json.NewDecoder(resp.Body).Decode(out)
	}

	// 202 Accepted: the run's messages are published; the run key names all its shards.
	var forced admin.ForceResponse
	err := call("POST", "/api/jobs/pg_partition/run",
		admin.ForceRequest{Params: json.RawMessage(`{"premake":2}`), RequestedBy: "example"}, &forced)
	if err != nil {
		fmt.Println(err)
		return
	}

	// Poll the ledger until every shard has ended, then read each one's result JSON.
	for {
		var page struct {
			Runs []ledger.Run `json:"runs"`
		}
		q := url.Values{"job": {"pg_partition"}, "run_key": {forced.RunKey}}
		if err := call("GET", "/api/runs?"+q.Encode(), nil, &page); err != nil {
			fmt.Println(err)
			return
		}
		done := len(page.Runs) == forced.Shards
		for _, r := range page.Runs {
			done = done && r.Status.Terminal()
		}
		if done {
			for _, r := range page.Runs {
				fmt.Println(r.ID, r.Status, string(r.Result), r.Error)
			}
			return
		}
		select {
		case <-ctx.Done():
			fmt.Println("not finished:", ctx.Err())
			return
		case <-time.After(time.Second):
		}
	}
}
