package deploy

import (
	"context"
	"time"

	"github.com/chatplat/job-service/ledger"
)

// stubLedger feeds the metrics' ledger collector so its series appear in a gather.
type stubLedger struct{}

func (stubLedger) LastSuccess(context.Context, []string) (map[string]time.Time, error) {
	return map[string]time.Time{"j": time.Unix(1, 0)}, nil
}

func (stubLedger) Backlog(context.Context) ([]ledger.BacklogEntry, error) {
	return []ledger.BacklogEntry{{Job: "j", Due: 1}}, nil
}

func (stubLedger) FileGCSweeps(context.Context, string) ([]ledger.FileGCSweep, error) {
	return []ledger.FileGCSweep{{Shard: 0, Backlog: 1, CappedInARow: 1}}, nil
}
