package relay

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/delivery/bus"
	"github.com/kycengine/kyc/adapters/delivery/bus/natstest"
	"github.com/kycengine/kyc/adapters/delivery/cloudevent"
	"github.com/kycengine/kyc/adapters/eventstore/memory"
	"github.com/kycengine/kyc/adapters/pgtest"
	"github.com/kycengine/kyc/domain"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestWritersToConsumers: 16 writers append to 200 customers while the
// relay publishes through a real broker; a consumer receives every event at
// least once and each customer's events in revision order.
func TestWritersToConsumers(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) string{
		"nats":     func(t *testing.T) string { return natstest.Start(t) },
		"postgres": func(t *testing.T) string { return pgtest.NewDatabase(t) },
	} {
		t.Run(name, func(t *testing.T) {
			runWritersToConsumers(t, url(t))
		})
	}
}

func runWritersToConsumers(t *testing.T, url string) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	pubBus, err := bus.Open(ctx, url, bus.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pubBus.Close()
	subBus, err := bus.Open(ctx, url, bus.Options{Group: "downstream", FromStart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer subBus.Close()
	msgs, err := subBus.Subscriber().Subscribe(ctx, DefaultTopic)
	if err != nil {
		t.Fatal(err)
	}
	got := &received{revisions: map[string][]uint64{}, ids: map[string]bool{}}
	go got.collect(t, msgs)

	store := memory.New()
	r, err := New(Config{Log: store, Publisher: pubBus.Publisher(), Checkpoints: &memCheckpoints{}})
	if err != nil {
		t.Fatal(err)
	}
	relayCtx, stopRelay := context.WithCancel(ctx)
	relayDone := make(chan error, 1)
	go func() { relayDone <- r.Run(relayCtx) }()

	const writers, customers, perWriter = 16, 200, 60
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				stream := domain.StreamName(fmt.Sprintf("cust-%03d", (w*perWriter+i)%customers))
				e := domain.EventData{ID: uuid.New(), Type: "NoteAdded", SchemaVersion: 1, OccurredAt: time.Now().UTC(),
					Actor: domain.Actor{Kind: domain.ActorOperator, ID: fmt.Sprint(w)}, Data: json.RawMessage(`{}`)}
				if _, err := store.Append(ctx, stream, domain.ExpectAny, []domain.EventData{e}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := writers * perWriter
	got.waitDistinct(t, total)
	stopRelay()
	<-relayDone
	got.check(t, store)
}

// received is what a downstream consumer saw.
type received struct {
	mu        sync.Mutex
	revisions map[string][]uint64 // stream -> revisions in arrival order
	ids       map[string]bool
	messages  int
	bad       error
}

func (r *received) collect(t *testing.T, msgs <-chan *message.Message) {
	for m := range msgs {
		ev, err := cloudevent.FromMessage(m)
		r.mu.Lock()
		r.messages++
		switch {
		case err != nil:
			r.bad = err
		case ev.ID() != m.UUID:
			r.bad = fmt.Errorf("message %s carries event %s", m.UUID, ev.ID())
		default:
			rev, _ := strconv.ParseUint(m.Metadata.Get(cloudevent.KeyRevision), 10, 64)
			stream := m.Metadata.Get(cloudevent.KeyStream)
			r.revisions[stream] = append(r.revisions[stream], rev)
			r.ids[ev.ID()] = true
		}
		r.mu.Unlock()
		m.Ack()
	}
}

func (r *received) waitDistinct(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		r.mu.Lock()
		k, bad := len(r.ids), r.bad
		r.mu.Unlock()
		if bad != nil {
			t.Fatal(bad)
		}
		if k >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer received %d of %d events", k, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// check compares what arrived with the log: every event, and per customer
// in revision order (a redelivery may repeat an earlier revision, never skip
// ahead).
func (r *received) check(t *testing.T, store domain.EventStore) {
	t.Helper()
	log, err := store.ReadAll(context.Background(), domain.Start, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range log {
		if !r.ids[e.ID.String()] {
			t.Fatalf("event %s of %s never arrived", e.ID, e.Stream)
		}
	}
	for stream, revs := range r.revisions {
		next := uint64(0)
		for _, rev := range revs {
			if rev > next {
				t.Fatalf("%s: revision %d arrived before %d", stream, rev, next)
			}
			if rev == next {
				next++
			}
		}
	}
	t.Logf("%d events, %d messages received", len(log), r.messages)
}
