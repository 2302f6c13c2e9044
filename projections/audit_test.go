package projections_test

import (
	"context"
	"slices"
	"testing"

	"github.com/kycengine/kyc/adapters/enginetest"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// companyLookups records the customers whose company the audit projection
// asks its store for.
type companyLookups struct {
	projections.Store
	asked []string
}

func (s *companyLookups) AuditCompanies(ctx context.Context, gen projections.Generation, ids []string) (map[string]string, error) {
	s.asked = append(s.asked, ids...)
	return s.Store.AuditCompanies(ctx, gen, ids)
}

// TestAuditKeepsCompaniesBetweenBatches: the company of a customer seen in
// an earlier batch is not asked for again until the projection forgets the
// generation, and every entry carries the company either way.
func TestAuditKeepsCompaniesBetweenBatches(t *testing.T) {
	for name, open := range readStores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			svc, events := enginetest.NewService(t)
			opts := domain.Options{Caller: superuser}
			var ids []string
			for _, company := range []string{"acme", "globex"} {
				res, err := svc.Register(ctx, domain.RegisterCustomer{Company: company, Name: &domain.Name{First: "Ada", Last: "Lovelace"}, Nationality: "GB"}, opts)
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, res.Customer.ID)
			}
			for range 2 {
				for _, id := range ids {
					if _, err := svc.Execute(ctx, id, domain.AddNote{Text: "called the customer"}, opts); err != nil {
						t.Fatal(err)
					}
				}
			}
			log, err := events.ReadAll(ctx, domain.Start, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(log) != 6 {
				t.Fatalf("%d events in the log, want 6", len(log))
			}

			store := &companyLookups{Store: open(t)}
			audit, err := projections.NewAudit(store, svc.Codec())
			if err != nil {
				t.Fatal(err)
			}
			gen, err := store.CreateGeneration(ctx, projections.AuditProjection, audit.Version())
			if err != nil {
				t.Fatal(err)
			}
			apply := func(from, to int) []string {
				t.Helper()
				store.asked = nil
				if err := audit.Apply(ctx, gen, log[from:to], log[to-1].Position); err != nil {
					t.Fatal(err)
				}
				return store.asked
			}
			// The two registrations, then the first notes, in batches of
			// their own: both companies come from the registrations.
			if asked := apply(0, 2); len(asked) != 0 {
				t.Errorf("registrations: asked the store for %v", asked)
			}
			if asked := apply(2, 4); len(asked) != 0 {
				t.Errorf("notes after the registrations: asked the store for %v", asked)
			}
			audit.Forget(gen)
			if asked := apply(4, 6); !slices.Equal(slices.Sorted(slices.Values(asked)), slices.Sorted(slices.Values(ids))) {
				t.Errorf("notes after Forget: asked the store for %v, want both customers", asked)
			}

			if err := store.Activate(ctx, projections.AuditProjection, gen); err != nil {
				t.Fatal(err)
			}
			page, err := store.Audit(ctx, projections.AuditQuery{PerPage: 100}.Normalized())
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{ids[0]: "acme", ids[1]: "globex"}
			if len(page.Entries) != 6 {
				t.Fatalf("%d audit entries, want 6", len(page.Entries))
			}
			for _, e := range page.Entries {
				if e.CompanyID != want[e.CustomerID] {
					t.Errorf("entry %s of customer %s has company %q, want %q", e.Type, e.CustomerID, e.CompanyID, want[e.CustomerID])
				}
			}
		})
	}
}
