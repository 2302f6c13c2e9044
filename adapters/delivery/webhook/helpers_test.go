package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/delivery/bus"
	"github.com/kycengine/kyc/adapters/delivery/cloudevent"
	"github.com/kycengine/kyc/adapters/delivery/relay"
	"github.com/kycengine/kyc/adapters/delivery/state"
	"github.com/kycengine/kyc/adapters/pgtest"
	"github.com/kycengine/kyc/domain"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// database opens a delivery state and says how to open it again (a
// restart).
type database struct {
	open func(t *testing.T) *state.Store
}

// forEachDatabase runs a test on a fresh SQLite file and a fresh
// PostgreSQL database.
func forEachDatabase(t *testing.T, test func(t *testing.T, db database)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "delivery.db")
		test(t, database{open: func(t *testing.T) *state.Store {
			st, err := state.OpenSQLite(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}})
	})
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.NewDatabase(t)
		test(t, database{open: func(t *testing.T) *state.Store {
			st, err := state.OpenPostgres(t.Context(), url)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}})
	})
}

// sqliteStore is a fresh SQLite delivery state, closed with the test.
func sqliteStore(t *testing.T) *state.Store {
	t.Helper()
	st, err := state.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "delivery.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// fastConfig is the production pipeline with waits in milliseconds.
func fastConfig(st *state.Store) Config {
	return Config{
		Store:        st,
		Schedule:     Schedule{Delays: []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}, Jitter: 0.2},
		Retry:        Retry{MaxRetries: 2, InitialInterval: time.Millisecond, MaxInterval: 5 * time.Millisecond, Multiplier: 2, RandomizationFactor: 0.5},
		Timeout:      2 * time.Second,
		PollInterval: 20 * time.Millisecond,
	}
}

// stoppedConfig is fastConfig with a clock that never moves: everything the
// test makes is made within one tick of it.
func stoppedConfig(st *state.Store) Config {
	cfg := fastConfig(st)
	tick := time.Now()
	cfg.Clock = func() time.Time { return tick }
	return cfg
}

// running is a Service running on an in-process bus.
type running struct {
	svc  *Service
	bus  *bus.Bus
	stop func()
}

// start runs a service on a new in-process bus until stop or the end of
// the test.
func start(t *testing.T, cfg Config) *running {
	t.Helper()
	svc, err := NewService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Open(t.Context(), "", bus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, b.Subscriber()) }()
	select {
	case <-svc.Started():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the service did not start")
	}
	var once sync.Once
	r := &running{svc: svc, bus: b}
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v, want context.Canceled", err)
			}
			b.Close()
		})
	}
	t.Cleanup(r.stop)
	return r
}

// startWithEndpoint starts a service on cfg with one endpoint of company
// acme, at a receiver that answers 200; it returns the endpoint's secret.
func startWithEndpoint(t *testing.T, cfg Config) (*running, *receiver, Endpoint, string) {
	t.Helper()
	rc := newReceiver(t, always(http.StatusOK))
	r := start(t, cfg)
	ep, secret, err := r.svc.CreateEndpoint(t.Context(), EndpointInput{Company: "acme", URL: rc.URL})
	if err != nil {
		t.Fatal(err)
	}
	return r, rc, ep, secret
}

// publish puts an event of a customer on the bus the way the relay does;
// the in-process bus returns once the fan-out acked it.
func (r *running) publish(t *testing.T, e domain.RecordedEvent) {
	t.Helper()
	if err := r.bus.Publisher().Publish(relay.DefaultTopic, cloudevent.ToMessage(e, "")); err != nil {
		t.Fatal(err)
	}
}

// seq numbers the test events' log positions.
var seq atomic.Uint64

// event builds a recorded event of a customer's stream.
func event(customer, typ string, data any) domain.RecordedEvent {
	raw, err := json.Marshal(data)
	if err != nil {
		panic(err)
	}
	rev := seq.Add(1)
	now := time.Now().UTC()
	return domain.RecordedEvent{
		EventData: domain.EventData{ID: uuid.New(), Type: typ, SchemaVersion: 1, OccurredAt: now,
			Actor: domain.Actor{Kind: domain.ActorOperator, ID: "alice", Company: "acme"}, Data: raw},
		Stream: domain.StreamName(customer), Revision: rev, Position: domain.Position{Commit: rev, Prepare: rev}, RecordedAt: now,
	}
}

func registered(customer, company string) domain.RecordedEvent {
	return event(customer, "CustomerRegistered", map[string]any{"customer_id": customer, "public_id": "P-1", "company_id": company,
		"company_name": company, "lifecycle": "kyc-review", "lifecycle_version": 1, "status": "CREATED"})
}

func statusChanged(customer string) domain.RecordedEvent {
	return event(customer, "StatusChanged", map[string]any{"from": "CREATED", "to": "APPROVED", "transition": "approve"})
}

// request is what a receiver got.
type request struct {
	path   string
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is an HTTP endpoint that answers what answer says for the n-th
// request (from 1) and keeps every request.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []request
	answer   func(n int, r request) int
}

func newReceiver(t *testing.T, answer func(n int, r request) int) *receiver {
	rc := &receiver{answer: answer}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := request{path: r.URL.Path, header: r.Header.Clone(), body: body, at: time.Now()}
		rc.mu.Lock()
		rc.requests = append(rc.requests, req)
		n := len(rc.requests)
		rc.mu.Unlock()
		w.WriteHeader(rc.answer(n, req))
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) got() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.requests...)
}

func always(status int) func(int, request) int { return func(int, request) int { return status } }

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitStatus waits for a delivery to reach status and returns it.
func waitStatus(t *testing.T, svc *Service, id, status string) Delivery {
	t.Helper()
	var d Delivery
	eventually(t, 15*time.Second, "delivery "+id+" "+status, func() bool {
		var err error
		d, _, err = svc.GetDelivery(t.Context(), Everything(), id)
		return err == nil && d.Status == status
	})
	return d
}

func mustDeliveryID(t *testing.T, endpointID string, e domain.RecordedEvent) string {
	t.Helper()
	id, err := deliveryID(endpointID, e.ID.String())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// idsOf is what id says of each item, in order.
func idsOf[T any](items []T, id func(T) string) []string {
	out := make([]string, 0, len(items))
	for _, item := range items {
		out = append(out, id(item))
	}
	return out
}
