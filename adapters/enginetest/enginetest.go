// Package enginetest builds the engine for tests: the command service over
// the in-memory store with the shipped lifecycles, kyc-review the default.
package enginetest

import (
	"testing"

	"github.com/kycengine/kyc/adapters/eventstore/memory"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/schemas"
)

// Lifecycles loads the shipped lifecycle definitions.
func Lifecycles(t testing.TB) *domain.Lifecycles {
	t.Helper()
	ls, err := domain.LoadLifecycles(schemas.Lifecycles(), "kyc-review")
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// NewService returns a command service and the memory store behind it.
func NewService(t testing.TB) (*domain.Service, *memory.Store) {
	t.Helper()
	store := memory.New()
	svc, err := domain.NewService(domain.ServiceConfig{Store: store, Idempotency: store, Lifecycles: Lifecycles(t), Codec: domain.NewCodec()})
	if err != nil {
		t.Fatal(err)
	}
	return svc, store
}
