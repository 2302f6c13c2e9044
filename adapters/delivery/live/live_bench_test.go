package live_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/delivery/live"
	"github.com/kycengine/kyc/domain"
)

// BenchmarkAppendToSocket measures how long a page waits to hear of a change:
// from the start of an Append on the memory store to the push being read
// from the customer's socket, one event at a time so queueing does not hide
// in the figure. One op is one event; run with -benchtime=2000x for the
// 2000-event sample the latency targets are stated over.
func BenchmarkAppendToSocket(b *testing.B) {
	e := newEnv(b, envConfig{})
	customer := uuid.NewString()
	sock := e.dial(b, customer, nil)
	stream := domain.StreamName(customer)

	events := make([]domain.EventData, b.N)
	for i := range events {
		events[i] = e.eventData(b, domain.StepResultRecorded{Step: "liveness", Result: "passed"})
	}
	latencies := make([]time.Duration, 0, b.N)
	ctx := context.Background()

	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := e.store.Append(ctx, stream, domain.ExpectAny, events[i:i+1]); err != nil {
			b.Fatal(err)
		}
		var m live.Message
		readJSON(b, sock, &m)
		latencies = append(latencies, time.Since(start))
		if m.EventID != events[i].ID.String() {
			b.Fatalf("push %d is %s, want %s", i, m.EventID, events[i].ID)
		}
	}
	b.StopTimer()

	slices.Sort(latencies)
	ms := func(q float64) float64 {
		return float64(latencies[int(q*float64(len(latencies)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(ms(0.50), "p50_ms")
	b.ReportMetric(ms(0.99), "p99_ms")
}
