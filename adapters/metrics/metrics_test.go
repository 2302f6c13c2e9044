package metrics_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/eventstore/memory"
	"github.com/kycengine/kyc/adapters/metrics"
	"github.com/kycengine/kyc/domain"
)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestMetricsExposeTheEngineSeries(t *testing.T) {
	m := metrics.New()
	m.CommandFinished("ChangeStatus", domain.OutcomeRefused, 3*time.Millisecond)
	m.ConcurrencyConflict("ChangeStatus")
	m.BatchCommitted(17, 20, 2*time.Millisecond)
	m.Request("POST", "/v1/customers", 201, time.Millisecond)
	store := m.InstrumentStore(memory.New())
	ev := domain.EventData{ID: uuid.New(), Type: "NoteAdded", SchemaVersion: 1, OccurredAt: time.Now(), Data: []byte(`{}`)}
	if _, err := store.Append(context.Background(), "customer-1", domain.ExpectNoStream, []domain.EventData{ev}); err != nil {
		t.Fatal(err)
	}
	ev.ID = uuid.New()
	if _, err := store.Append(context.Background(), "customer-1", domain.ExpectNoStream, []domain.EventData{ev}); err == nil {
		t.Fatal("second append with no-stream succeeded")
	}
	out := scrape(t, m)
	for _, want := range []string{
		`kyc_commands_total{command="ChangeStatus",outcome="refused"} 1`,
		`kyc_concurrency_conflicts_total{command="ChangeStatus"} 1`,
		`kyc_group_commit_batch_requests_sum 17`,
		`kyc_group_commit_batch_events_sum 20`,
		`kyc_event_append_duration_seconds_count{result="ok"} 1`,
		`kyc_event_append_duration_seconds_count{result="conflict"} 1`,
		`kyc_http_requests_total{code="201",method="POST",route="/v1/customers"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

type admissionState struct {
	inFlight, waiting int
	limit             float64
}

func (a admissionState) AdmissionState() (int, int, float64) { return a.inFlight, a.waiting, a.limit }

func TestMetricsExposeTheAdmission(t *testing.T) {
	for _, tc := range []struct {
		state admissionState
		want  []string
	}{
		{admissionState{inFlight: 12, waiting: 52, limit: 12.5}, []string{
			"kyc_commands_in_flight 12", "kyc_commands_waiting 52", "kyc_commands_in_flight_limit 12.5"}},
		{admissionState{inFlight: 3, limit: math.Inf(1)}, []string{
			"kyc_commands_in_flight 3", "kyc_commands_waiting 0", "kyc_commands_in_flight_limit +Inf"}},
	} {
		m := metrics.New()
		m.Admission(tc.state)
		out := scrape(t, m)
		for _, want := range tc.want {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("metrics lack %q", want)
			}
		}
	}
}

// sample reads one sample's value from a scrape; ok is false when the
// series is missing.
func sample(out, series string) (v float64, ok bool) {
	for _, line := range strings.Split(out, "\n") {
		if rest, found := strings.CutPrefix(line, series+" "); found {
			_, err := fmt.Sscan(rest, &v)
			return v, err == nil
		}
	}
	return 0, false
}

// batchAged is two events, recorded old and new ago, in that order.
func batchAged(old, new time.Duration) []domain.RecordedEvent {
	now := time.Now()
	return []domain.RecordedEvent{{RecordedAt: now.Add(-old)}, {RecordedAt: now.Add(-new)}}
}

// TestProjectionMetrics: events applied count rebuilds too, but only live
// batches say how long an event took to become visible, timed from the
// batch's first (oldest) event; lag and held time are reported as given.
func TestProjectionMetrics(t *testing.T) {
	m := metrics.New()
	p := m.Projections()
	p.Applied("customers", batchAged(time.Hour, time.Hour), 5*time.Millisecond, true)
	p.Applied("customers", batchAged(2*time.Second, 0), 7*time.Millisecond, false)
	p.Applied("audit", nil, time.Millisecond, false)
	p.Lag("customers", 42, 1.5)
	p.Held("customers", 30*time.Millisecond)
	out := scrape(t, m)
	for series, want := range map[string]float64{
		`kyc_projection_events_applied_total{projection="customers"}`:         4,
		`kyc_projection_events_applied_total{projection="audit"}`:             0,
		`kyc_projection_batch_duration_seconds_count{projection="customers"}`: 2,
		`kyc_projection_batch_duration_seconds_sum{projection="customers"}`:   0.012,
		`kyc_projection_visible_delay_seconds_count{projection="customers"}`:  1,
		`kyc_projection_lag_events{projection="customers"}`:                   42,
		`kyc_projection_lag_seconds{projection="customers"}`:                  1.5,
		`kyc_commands_held_seconds_count{projection="customers"}`:             1,
		`kyc_commands_held_seconds_sum{projection="customers"}`:               0.03,
	} {
		if got, ok := sample(out, series); !ok || math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if _, ok := sample(out, `kyc_projection_visible_delay_seconds_count{projection="audit"}`); ok {
		t.Error("an empty batch observed a visible delay")
	}
	if got, _ := sample(out, `kyc_projection_visible_delay_seconds_sum{projection="customers"}`); got < 2 || got > 3 {
		t.Errorf("visible delay %v s, want the oldest event's 2 s", got)
	}
}

// TestRelayMetrics: as the projections', for the relay.
func TestRelayMetrics(t *testing.T) {
	m := metrics.New()
	r := m.Relay()
	r.Published(append(batchAged(2*time.Second, 0), batchAged(time.Second, time.Second)...), 4*time.Millisecond)
	r.Published(nil, time.Millisecond)
	r.Lag(7, 0.25)
	out := scrape(t, m)
	for series, want := range map[string]float64{
		`kyc_relay_events_published_total`:       4,
		`kyc_relay_batch_duration_seconds_count`: 2,
		`kyc_relay_batch_duration_seconds_sum`:   0.005,
		`kyc_relay_delivery_delay_seconds_count`: 1,
		`kyc_relay_lag_events`:                   7,
		`kyc_relay_lag_seconds`:                  0.25,
	} {
		if got, ok := sample(out, series); !ok || math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if got, _ := sample(out, `kyc_relay_delivery_delay_seconds_sum`); got < 2 || got > 3 {
		t.Errorf("delivery delay %v s, want the oldest event's 2 s", got)
	}
}
