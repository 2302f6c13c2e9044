package memory_test

import (
	"testing"

	"github.com/kycengine/kyc/adapters/eventstore/memory"
	"github.com/kycengine/kyc/adapters/eventstore/storetest"
	"github.com/kycengine/kyc/domain"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) domain.EventStore { return memory.New() })
}
