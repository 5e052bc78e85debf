package filegc

import (
	"context"
	"time"

	"github.com/chatplat/job-service/filereap"
	"github.com/chatplat/job-service/ledger"
)

type sent struct {
	tag  string
	body []byte
	at   time.Time
}

type fakePub struct{ sent []sent }

func (f *fakePub) PublishRaw(_ context.Context, _, tag string, _ []string, body []byte, at time.Time) (string, error) {
	f.sent = append(f.sent, sent{tag: tag, body: body, at: at})
	return "id", nil
}

type fakeReaper struct {
	got [][]filereap.Candidate
	err error
	res filereap.ReapResult
}

func (f *fakeReaper) Reap(ctx context.Context, c []filereap.Candidate, o filereap.ReapOptions) (filereap.ReapResult, error) {
	f.got = append(f.got, c)
	if f.err != nil {
		return filereap.ReapResult{}, f.err
	}
	return f.res, nil
}

type fakeRecorder struct {
	rejected []ledger.Rejection
	failures []string
}

func (f *fakeRecorder) RecordRejected(_ context.Context, r ledger.Rejection) error {
	f.rejected = append(f.rejected, r)
	return nil
}

func (f *fakeRecorder) RecordBatchFailure(_ context.Context, _, _, _, _ string, _ time.Time, _ any, errText string) error {
	f.failures = append(f.failures, errText)
	return nil
}
