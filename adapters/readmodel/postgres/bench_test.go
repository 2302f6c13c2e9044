package postgres_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/kycengine/kyc/adapters/pgtest"
	"github.com/kycengine/kyc/adapters/readmodel/postgres"
	"github.com/kycengine/kyc/projections"
)

// BenchmarkActiveLookup measures what looking the active generation up per
// query costs against the cache kept by LISTEN/NOTIFY, on the cheapest read
// (one customer) and a list page.
func BenchmarkActiveLookup(b *testing.B) {
	url := pgtest.NewDatabase(b) + os.Getenv("BENCH_URL_SUFFIX")
	writer, err := postgres.Open(b.Context(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer writer.Close()
	rows := make([]projections.CustomerRow, 2000)
	for i := range rows {
		rows[i] = row(fmt.Sprintf("c%05d", i), fmt.Sprintf("co-%d", i%10))
	}
	gen, err := writer.CreateGeneration(b.Context(), projections.CustomersProjection, 1)
	if err != nil {
		b.Fatal(err)
	}
	if err := writer.PutCustomers(b.Context(), gen, pos(1), rows); err != nil {
		b.Fatal(err)
	}
	if err := writer.Activate(b.Context(), projections.CustomersProjection, gen); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []struct {
		name string
		opts []postgres.Option
	}{{"notify", nil}, {"per-query", []postgres.Option{postgres.WithoutNotify()}}} {
		s, err := postgres.Open(b.Context(), url, mode.opts...)
		if err != nil {
			b.Fatal(err)
		}
		// Wait for the listener, so the cache is in use.
		for range 1000 {
			if _, err := s.Customer(b.Context(), "c00001"); err != nil {
				b.Fatal(err)
			}
		}
		b.Run("customer/"+mode.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := s.Customer(b.Context(), rows[i%len(rows)].Customer.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("list/"+mode.name, func(b *testing.B) {
			q := projections.ListQuery{ScopeCompany: "co-3"}.Normalized()
			for b.Loop() {
				if _, err := s.ListCustomers(b.Context(), q); err != nil {
					b.Fatal(err)
				}
			}
		})
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
