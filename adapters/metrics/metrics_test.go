package metrics_test

import (
	"context"
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
