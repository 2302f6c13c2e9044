package demo_test

import (
	"context"
	"testing"

	"github.com/kycengine/kyc/adapters/demo"
	"github.com/kycengine/kyc/adapters/enginetest"
	"github.com/kycengine/kyc/domain"
)

func TestSeedWalksEveryLifecycleWithoutRefusals(t *testing.T) {
	svc, store := enginetest.NewService(t)
	last := 0
	if err := demo.Seed(context.Background(), svc, 400, 8, 1, func(done, total int) { last = max(last, done) }); err != nil {
		t.Fatal(err)
	}
	if last != 400 {
		t.Fatalf("progress reached %d of 400", last)
	}
	events, _ := store.ReadAll(context.Background(), domain.Start, 0)
	statuses := map[string]bool{}
	codec := domain.NewCodec()
	for _, e := range events {
		r, err := codec.DecodeRecorded(e)
		if err != nil {
			t.Fatal(err)
		}
		if sc, ok := r.Event.(*domain.StatusChanged); ok {
			statuses[sc.To] = true
		}
	}
	for _, want := range []string{"APPROVED", "PENDING_APPROVAL", "REJECTED", "BLACKLISTED", "PENDING_UPLOAD", "active", "rejected", "suspended", "blocked"} {
		if !statuses[want] {
			t.Errorf("no demo customer reached %s", want)
		}
	}
	if len(events) < 400*5 {
		t.Errorf("only %d events for 400 customers", len(events))
	}
}
