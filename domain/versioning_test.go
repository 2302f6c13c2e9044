package domain_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/kycengine/kyc/adapters/enginetest"
	"github.com/kycengine/kyc/adapters/eventstore/memory"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/schemas"
)

// riskAssessedV2 is a hypothetical next version of RiskAssessed that scores
// risk 0-100 instead of naming a level, to show how old events stay readable.
type riskAssessedV2 struct {
	Score  int    `json:"score"`
	Source string `json:"source,omitempty"`
}

func (riskAssessedV2) EventType() string { return "RiskAssessed" }

func TestUpcastingReadsOldVersions(t *testing.T) {
	codec := domain.NewCodec()
	toV2 := func(data, personal json.RawMessage) (json.RawMessage, json.RawMessage, error) {
		var v1 struct{ Risk, Source string }
		if err := json.Unmarshal(data, &v1); err != nil {
			return nil, nil, err
		}
		score := map[string]int{domain.RiskNormal: 10, domain.RiskHigh: 60, domain.RiskVeryHigh: 90}[v1.Risk]
		out, err := json.Marshal(riskAssessedV2{Score: score, Source: v1.Source})
		return out, personal, err
	}
	if err := codec.Register(func() domain.Event { return &riskAssessedV2{} }, 3, toV2); err == nil {
		t.Fatal("registering version 3 after 1 was accepted")
	}
	if err := codec.Register(func() domain.Event { return &riskAssessedV2{} }, 2, nil); err == nil {
		t.Fatal("a new version without an upcaster was accepted")
	}
	if err := codec.Register(func() domain.Event { return &riskAssessedV2{} }, 2, toV2); err != nil {
		t.Fatal(err)
	}
	stored := json.RawMessage(`{"risk":"HIGH","source":"risk-engine"}`)
	e, err := codec.Decode("RiskAssessed", 1, stored, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := e.(*riskAssessedV2); !ok || got.Score != 60 || got.Source != "risk-engine" {
		t.Fatalf("v1 event decoded as %#v", e)
	}
	if _, version, _, _, err := codec.Encode(&riskAssessedV2{Score: 5}); err != nil || version != 2 {
		t.Fatalf("new events encode at version %d (%v), want 2", version, err)
	}
	if _, err := codec.Decode("RiskAssessed", 3, stored, nil); err == nil {
		t.Fatal("a version from the future decoded")
	}
}

// A customer keeps the lifecycle version it was registered under: a new
// definition applies to new customers only.
func TestLifecycleVersionIsKeptPerCustomer(t *testing.T) {
	v1, err := fs.ReadFile(schemas.Lifecycles(), "kyc-review.v1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Version 2 drops four-eyes: a reviewer may approve straight from review.
	v2def := strings.Replace(string(v1), "version: 1", "version: 2", 1) + `  - event: approve_directly
    from: [PENDING_REVIEW]
    to: APPROVED
`
	l1, err := domain.ParseDefinition(v1)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := domain.ParseDefinition([]byte(v2def))
	if err != nil {
		t.Fatal(err)
	}
	store := memory.New()
	old, err := domain.NewService(domain.ServiceConfig{Store: store, Idempotency: store, Lifecycles: mustLifecycles(t, l1), Codec: domain.NewCodec()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := old.Register(ctx, domain.RegisterCustomer{Name: &domain.Name{First: "Ada", Last: "Lovelace"}}, domain.Options{Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	// The engine restarts with both versions; v2 is the latest.
	both, err := domain.NewService(domain.ServiceConfig{Store: store, Idempotency: store, Lifecycles: mustLifecycles(t, l1, l2), Codec: domain.NewCodec()})
	if err != nil {
		t.Fatal(err)
	}
	toReview := domain.ChangeStatus{Status: "PENDING_REVIEW"}
	if _, err := both.Execute(ctx, res.Customer.ID, toReview, domain.Options{Caller: alice}); err != nil {
		t.Fatal(err)
	}
	if _, err := both.Execute(ctx, res.Customer.ID, domain.ChangeStatus{Status: "APPROVED"}, domain.Options{Caller: alice}); !errors.Is(err, domain.ErrIllegalTransition) {
		t.Fatalf("v1 customer approved straight from review: %v", err)
	}
	fresh, err := both.Register(ctx, domain.RegisterCustomer{Name: &domain.Name{First: "Grace", Last: "Hopper"}}, domain.Options{Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Customer.LifecycleVersion != 2 {
		t.Fatalf("new customer got lifecycle version %d", fresh.Customer.LifecycleVersion)
	}
	if _, err := both.Execute(ctx, fresh.Customer.ID, toReview, domain.Options{Caller: alice}); err != nil {
		t.Fatal(err)
	}
	if r, err := both.Execute(ctx, fresh.Customer.ID, domain.ChangeStatus{Status: "APPROVED"}, domain.Options{Caller: alice}); err != nil || r.Customer.Status != "APPROVED" {
		t.Fatalf("v2 customer direct approval: %v", err)
	}
}

func mustLifecycles(t *testing.T, ls ...*domain.Lifecycle) *domain.Lifecycles {
	t.Helper()
	all := []*domain.Lifecycle{}
	for _, name := range []string{"onboarding", "banking"} {
		l, err := enginetest.Lifecycles(t).Latest(name)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, l)
	}
	out, err := domain.NewLifecycles("kyc-review", append(all, ls...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
