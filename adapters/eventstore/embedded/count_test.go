package embedded

import (
	"context"
	"testing"

	"github.com/kycengine/kyc/domain"
)

// TestCountAfterMatchesReadAll: the projection engine reports lag and
// rebuild progress with CountAfter, so it must agree with what ReadAll
// returns, after a failed append too (its positions are handed out again).
func TestCountAfterMatchesReadAll(t *testing.T) {
	ctx := context.Background()
	s, _ := openTemp(t)
	count := func(after domain.Position) int64 {
		t.Helper()
		n, err := s.CountAfter(ctx, after)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(domain.Start); n != 0 {
		t.Fatalf("empty store: %d", n)
	}
	for i := 0; i < 5; i++ {
		if _, err := s.Append(ctx, "customer-a", domain.ExpectAny, []domain.EventData{event("A"), event("B")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(ctx, "customer-a", domain.ExpectNoStream, []domain.EventData{event("Refused")}); err == nil {
		t.Fatal("append to an existing stream with ExpectNoStream succeeded")
	}
	if _, err := s.Append(ctx, "customer-b", domain.ExpectNoStream, []domain.EventData{event("C")}); err != nil {
		t.Fatal(err)
	}
	all, err := s.ReadAll(ctx, domain.Start, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := count(domain.Start); n != int64(len(all)) {
		t.Fatalf("count from the start %d, ReadAll has %d", n, len(all))
	}
	for i, e := range all {
		if n := count(e.Position); n != int64(len(all)-i-1) {
			t.Fatalf("count after %s: %d, want %d", e.Position, n, len(all)-i-1)
		}
	}
}
