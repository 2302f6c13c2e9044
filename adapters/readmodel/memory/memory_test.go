package memory_test

import (
	"context"
	"testing"

	"github.com/kycengine/kyc/adapters/readmodel/memory"
	"github.com/kycengine/kyc/adapters/readmodel/readtest"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

func TestConformance(t *testing.T) {
	readtest.Run(t, func(*testing.T) projections.Store { return memory.New() })
}

// The conformance suite cannot tell a copy from shared memory; callers of a
// store in the same process can, so the reference store copies both ways.
func TestRowsAreCopied(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	gen, err := s.CreateGeneration(ctx, projections.CustomersProjection, 1)
	if err != nil {
		t.Fatal(err)
	}
	in := &domain.Customer{ID: "c1", Tags: []string{"vip"}, Name: &domain.Name{First: "Ada"}}
	if err := s.PutCustomers(ctx, gen, domain.Position{Commit: 1}, []projections.CustomerRow{{Customer: in, Seq: 99}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(ctx, projections.CustomersProjection, gen); err != nil {
		t.Fatal(err)
	}
	in.Tags[0], in.Name.First = "changed", "changed"
	got, err := s.Customer(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Customer.Tags[0] != "vip" || got.Customer.Name.First != "Ada" || got.Seq != 1 {
		t.Fatalf("stored row follows the caller's changes or keeps its seq: %+v", got)
	}
	got.Customer.Tags[0] = "changed"
	again, _ := s.Customer(ctx, "c1")
	if again.Customer.Tags[0] != "vip" {
		t.Fatal("a read row aliases the stored one")
	}

	ag, err := s.CreateGeneration(ctx, projections.AuditProjection, 1)
	if err != nil {
		t.Fatal(err)
	}
	entry := projections.AuditEntry{CustomerID: "c1", EventLine: projections.EventLine{Type: "StatusChanged", Labels: []string{"x"}},
		Changes: []projections.FieldChange{{Field: "status", To: []byte(`"A"`)}}}
	if err := s.AppendAudit(ctx, ag, domain.Position{Commit: 1}, []projections.AuditEntry{entry}); err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(ctx, projections.AuditProjection, ag); err != nil {
		t.Fatal(err)
	}
	entry.Labels[0], entry.Changes[0].To[1] = "y", 'B'
	page, err := s.Audit(ctx, projections.AuditQuery{}.Normalized())
	if err != nil || len(page.Entries) != 1 {
		t.Fatalf("audit: %+v %v", page, err)
	}
	if e := page.Entries[0]; e.Labels[0] != "x" || string(e.Changes[0].To) != `"A"` {
		t.Fatalf("stored entry follows the caller's changes: %+v", e)
	}
	if err := s.DropGeneration(ctx, projections.AuditProjection, ag); err == nil {
		t.Fatal("dropped the active generation")
	}
}
