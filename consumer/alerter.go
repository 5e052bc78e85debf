package consumer

import (
	"context"
	"fmt"

	"github.com/chatplat/job-service/job"
)

// Alerter is told about runs whose final status is failed (attempts exhausted or discarded),
// not about attempts that will be retried. It must return quickly and do its delivery in the
// background: the processor calls it on the run's goroutine.
type Alerter interface {
	RunFailed(ctx context.Context, env job.Envelope, runID int64, err error, result any)
}

// SetAlerter installs a; call it before the consumer starts. nil turns alerting off.
func (p *Processor) SetAlerter(a Alerter) { p.alerter = a }

// alertFailed hands a failed run to the alerter. Alerting is best effort: a broken alerter
// is logged and never changes the run's outcome or the message's fate.
func (p *Processor) alertFailed(ctx context.Context, r *run, runErr error, result any) {
	if p.alerter == nil {
		return
	}
	defer func() {
		if rec := recover(); rec != nil {
			p.runLog(r).ErrorContext(ctx, "alerter panicked", "err", fmt.Sprint(rec))
		}
	}()
	p.alerter.RunFailed(context.WithoutCancel(ctx), r.env, r.claim.RunID, runErr, result)
}
