package filegc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chatplat/job-service/filereap"
	"github.com/chatplat/job-service/ledger"
)

// Observer is told what the GC removed, for metrics. Methods must be cheap and safe for
// concurrent use.
type Observer interface {
	ObjectsDeleted(n int, bytes int64)
}

type nopObserver struct{}

func (nopObserver) ObjectsDeleted(int, int64) {}

// Publisher re-publishes an event as a timer message due when its grace period ends.
type Publisher interface {
	PublishRaw(ctx context.Context, topic, tag string, keys []string, body []byte, deliverAt time.Time) (string, error)
}

// Reaper collects files; *filereap.Reaper.
type Reaper interface {
	Reap(ctx context.Context, cands []filereap.Candidate, opts filereap.ReapOptions) (filereap.ReapResult, error)
}

// Recorder records what never reaches a batch's own record: malformed events and batches
// that failed before commit; *ledger.Ledger.
type Recorder interface {
	RecordRejected(ctx context.Context, r ledger.Rejection) error
	RecordBatchFailure(ctx context.Context, jobName, runKey, node, msgID string, startedAt time.Time, result any, errText string) error
}

// Delivery is one message as the broker handed it over.
type Delivery struct {
	Body           []byte
	MsgID          string
	Tag            string
	ReconsumeTimes int
}

// Verdict is what the broker should do with a whole batch.
type Verdict struct {
	Retry bool          // redeliver every message of the batch
	After time.Duration // no sooner than this
}

// BatchResult is the result JSON of one batch's ledger record.
type BatchResult struct {
	Events         int                      `json:"events"` // file events (a deferred message carries several)
	Malformed      int                      `json:"malformed"`
	Deferred       int                      `json:"deferred"` // not yet due: re-published as timer messages
	Due            int                      `json:"due"`
	DeletedObjects int                      `json:"deleted_objects"`
	DeletedRows    int                      `json:"deleted_rows"`
	BytesFreed     int64                    `json:"bytes_freed"`
	MissingObjects int                      `json:"missing_objects"`
	Skipped        map[string]int           `json:"skipped,omitempty"` // reason -> files
	SkipSamples    []filereap.Skip          `json:"skip_samples,omitempty"`
	Failures       int                      `json:"failures"`
	FailureSamples []filereap.ObjectFailure `json:"failure_samples,omitempty"`
	Reconsume      int                      `json:"reconsume"` // how often this batch was redelivered
	LockMs         int64                    `json:"lock_ms"`   // re-checking and locking the rows
	S3Ms           int64                    `json:"s3_ms"`     // the multi-delete
	DeleteMs       int64                    `json:"delete_ms"` // deleting the rows
	MsgIDs         []string                 `json:"msg_ids"`
}

const maxSamples = 20

// Processor decides what happens to a batch of events. It is separate from the RocketMQ
// consumer so it can be read alone.
type Processor struct {
	cfg    Config
	reaper Reaper
	pub    Publisher
	rej    Recorder
	node   string
	obs    Observer
	now    func() time.Time
	log    *slog.Logger
}

// NewProcessor returns a processor; obs may be nil.
func NewProcessor(cfg Config, reaper Reaper, pub Publisher, rej Recorder, node string, obs Observer,
	now func() time.Time, log *slog.Logger) *Processor {
	if obs == nil {
		obs = nopObserver{}
	}
	return &Processor{cfg: cfg, reaper: reaper, pub: pub, rej: rej, node: node, obs: obs, now: now, log: log}
}

// Process handles one batch: malformed events are recorded and dropped, events not yet due
// go back to the broker as timer messages, and the due ones are collected in one Reap (one
// multi-delete, one DELETE, one ledger record). Any database or S3 failure asks for the
// whole batch again; what was already removed is then a harmless duplicate.
func (p *Processor) Process(ctx context.Context, batch []Delivery) Verdict {
	now := p.now()
	res := BatchResult{Skipped: map[string]int{}}
	var cands []filereap.Candidate
	var later []deferred
	for _, d := range batch {
		res.MsgIDs = append(res.MsgIDs, d.MsgID)
		res.Reconsume = max(res.Reconsume, d.ReconsumeTimes)
		bodies := [][]byte{d.Body}
		if d.Tag == p.deferredTag() {
			var err error
			if bodies, err = decodeDeferred(d.Body); err != nil {
				bodies = [][]byte{d.Body} // recorded below as malformed
			}
		}
		for i, body := range bodies {
			res.Events++
			msgID := d.MsgID
			if len(bodies) > 1 {
				msgID = fmt.Sprintf("%s#%d", d.MsgID, i)
			}
			ev, err := Decode(body, now, p.cfg.ClockSkew)
			if err != nil {
				res.Malformed++
				p.log.WarnContext(ctx, "malformed file event", "msg_id", msgID, "error", err)
				if err := p.rej.RecordRejected(ctx, ledger.Rejection{Job: JobName, MsgID: msgID, Node: p.node,
					Reason: err.Error(), Body: body}); err != nil {
					return p.retry(ctx, res, fmt.Errorf("record malformed event: %w", err))
				}
				continue
			}
			if due := ev.EventTime.Add(p.cfg.Grace); due.After(now) {
				later = append(later, deferred{due: due, body: body})
				continue
			}
			res.Due++
			cands = append(cands, filereap.Candidate{ID: ev.FileID, NotAfter: ev.EventTime, Bucket: ev.Bucket, ObjectPath: ev.ObjectPath})
		}
	}
	// Not yet due: the broker holds them until the grace period ends. A consumer never
	// sleeps; the timer wheel waits for us.
	if err := p.deferAll(ctx, later); err != nil {
		return p.retry(ctx, res, err)
	}
	res.Deferred = len(later)
	if len(cands) == 0 {
		if res.Deferred > 0 {
			p.log.DebugContext(ctx, "file events deferred to their grace period", "events", res.Deferred)
		}
		return Verdict{}
	}
	// S3 takes 1000 keys per multi-delete; a batch of deferred messages can carry more, and
	// is then collected in chunks, each with its own record.
	retry := false
	for start := 0; start < len(cands); start += maxReap {
		chunk := cands[start:min(start+maxReap, len(cands))]
		cres := res
		if start > 0 {
			cres.Events, cres.Malformed, cres.Deferred = 0, 0, 0
		}
		cres.Due = len(chunk)
		v := p.reap(ctx, now, chunk, cres)
		retry = retry || v.Retry
	}
	if retry {
		return Verdict{Retry: true, After: p.backoff(res.Reconsume)}
	}
	return Verdict{}
}

// maxReap is the most files one Reap (one transaction, one multi-delete request) takes.
const maxReap = 1000

func (p *Processor) reap(ctx context.Context, now time.Time, cands []filereap.Candidate, res BatchResult) Verdict {
	runKey := batchRunKey(now)
	_, err := p.reaper.Reap(ctx, cands, filereap.ReapOptions{CheckMissing: p.cfg.CheckMissing,
		RunID: func(ctx context.Context, tx pgx.Tx, rr *filereap.ReapResult) (int64, error) {
			p.fill(&res, rr)
			status, errText := ledger.StatusSucceeded, ""
			if res.Failures > 0 {
				status, errText = ledger.StatusFailed, failureText(res)
			}
			return ledger.RecordBatchRun(ctx, tx, JobName, runKey, p.node, res.MsgIDs[0], now, status, res, errText)
		}})
	if err != nil {
		return p.retry(ctx, res, err)
	}
	p.obs.ObjectsDeleted(res.DeletedObjects, res.BytesFreed)
	if res.Failures > 0 {
		p.log.WarnContext(ctx, "file GC batch partly failed; redelivering", "run_key", runKey, "failures", res.Failures,
			"first", res.FailureSamples[0].Error)
		return Verdict{Retry: true, After: p.backoff(res.Reconsume)}
	}
	p.log.DebugContext(ctx, "file GC batch", "run_key", runKey, "deleted", res.DeletedRows, "bytes", res.BytesFreed)
	return Verdict{}
}

func (p *Processor) fill(res *BatchResult, rr *filereap.ReapResult) {
	res.DeletedRows = len(rr.Removed)
	res.DeletedObjects = len(rr.Removed) - rr.Missing - rr.Shared
	res.MissingObjects = rr.Missing
	res.BytesFreed = rr.Bytes
	res.LockMs, res.S3Ms, res.DeleteMs = rr.LockTime.Milliseconds(), rr.S3Time.Milliseconds(), rr.DeleteTime.Milliseconds()
	res.Skipped = map[string]int{}
	res.SkipSamples = nil
	for _, s := range rr.Skips {
		res.Skipped[s.Reason]++
		if len(res.SkipSamples) < maxSamples {
			res.SkipSamples = append(res.SkipSamples, s)
		}
	}
	res.Failures = len(rr.Failures)
	res.FailureSamples = rr.Failures[:min(len(rr.Failures), maxSamples)]
}

func failureText(res BatchResult) string {
	f := res.FailureSamples[0]
	return fmt.Sprintf("%d objects could not be deleted (first: %s/%s: %s); rows kept, batch redelivered",
		res.Failures, f.Bucket, f.ObjectPath, f.Error)
}

// retry records the failed attempt (best effort: the database may be what is down) and asks
// for the batch again.
func (p *Processor) retry(ctx context.Context, res BatchResult, cause error) Verdict {
	after := p.backoff(res.Reconsume)
	p.log.WarnContext(ctx, "file GC batch failed; redelivering", "error", cause, "reconsume", res.Reconsume, "after", after)
	if len(res.MsgIDs) > 0 {
		if err := p.rej.RecordBatchFailure(ctx, JobName, batchRunKey(p.now()), p.node, res.MsgIDs[0], p.now(), res,
			cause.Error()); err != nil && !errors.Is(err, context.Canceled) {
			p.log.WarnContext(ctx, "could not record the failed batch", "error", err)
		}
	}
	return Verdict{Retry: true, After: after}
}

// backoff doubles from 1s per redelivery, up to 5 minutes.
func (p *Processor) backoff(reconsume int) time.Duration {
	d := time.Second
	for i := 0; i < reconsume && d < 5*time.Minute; i++ {
		d *= 2
	}
	return min(d, 5*time.Minute)
}

func batchRunKey(now time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "batch:" + now.UTC().Format("20060102T150405.000000Z") + "-" + hex.EncodeToString(b)
}
