package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/delivery/cloudevent"
	"github.com/kycengine/kyc/adapters/eventstore/memory"
	"github.com/kycengine/kyc/domain"
)

type memCheckpoints struct {
	mu  sync.Mutex
	pos map[string]domain.Position
}

func (m *memCheckpoints) Checkpoint(_ context.Context, name string) (domain.Position, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pos[name], nil
}

func (m *memCheckpoints) SaveCheckpoint(_ context.Context, name string, pos domain.Position) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pos == nil {
		m.pos = map[string]domain.Position{}
	}
	m.pos[name] = pos
	return nil
}

// flaky fails every Publish call after the first failAfter messages, then
// recovers once healed is set.
type flaky struct {
	message.Publisher
	sent      atomic.Int64
	failAfter int64
	healed    atomic.Bool
}

var errBroker = errors.New("broker refused")

func (f *flaky) Publish(topic string, msgs ...*message.Message) error {
	if !f.healed.Load() && f.sent.Load()+int64(len(msgs)) > f.failAfter {
		return errBroker
	}
	f.sent.Add(int64(len(msgs)))
	return f.Publisher.Publish(topic, msgs...)
}

// lagObserver records the relay's reports.
type lagObserver struct {
	mu        sync.Mutex
	published int
	lastLag   int64
}

func (o *lagObserver) Published(batch []domain.RecordedEvent, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.published += len(batch)
}

func (o *lagObserver) Lag(events int64, _ float64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.lastLag = events
}

// consumer collects what a subscriber receives.
type consumer struct {
	mu       sync.Mutex
	received []*message.Message
	byID     map[string]int
}

func consume(t *testing.T, ctx context.Context, sub message.Subscriber) *consumer {
	t.Helper()
	msgs, err := sub.Subscribe(ctx, DefaultTopic)
	if err != nil {
		t.Fatal(err)
	}
	c := &consumer{byID: map[string]int{}}
	go func() {
		for m := range msgs {
			c.mu.Lock()
			c.received = append(c.received, m)
			c.byID[m.UUID]++
			c.mu.Unlock()
			m.Ack()
		}
	}()
	return c
}

func (c *consumer) waitDistinct(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.mu.Lock()
		k := len(c.byID)
		c.mu.Unlock()
		if k >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer received %d of %d distinct events", k, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func appendEvents(t *testing.T, store domain.EventStore, customers, perCustomer int) []domain.RecordedEvent {
	t.Helper()
	ctx := context.Background()
	for i := range perCustomer {
		for c := range customers {
			e := domain.EventData{
				ID: uuid.New(), Type: "NoteAdded", SchemaVersion: 1, OccurredAt: time.Now().UTC(),
				Actor: domain.Actor{Kind: domain.ActorOperator, ID: "op", Company: "acme"},
				Data:  json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)),
			}
			if _, err := store.Append(ctx, domain.StreamName(fmt.Sprintf("c%03d", c)), domain.ExpectAny, []domain.EventData{e}); err != nil {
				t.Fatal(err)
			}
		}
	}
	log, err := store.ReadAll(ctx, domain.Start, 0)
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// checkPerCustomerOrder checks that, skipping redeliveries, each customer's
// events arrived in revision order.
func checkPerCustomerOrder(t *testing.T, received []*message.Message) {
	t.Helper()
	next := map[string]uint64{}
	for _, m := range received {
		stream := m.Metadata.Get(cloudevent.KeyStream)
		rev, err := strconv.ParseUint(m.Metadata.Get(cloudevent.KeyRevision), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case rev == next[stream]:
			next[stream]++
		case rev > next[stream]:
			t.Fatalf("%s: revision %d arrived before %d", stream, rev, next[stream])
		}
		// rev < next: a redelivery of an event already seen.
	}
}

func TestRelayPublishesEveryEventInOrderPerCustomer(t *testing.T) {
	store := memory.New()
	log := appendEvents(t, store, 20, 30)
	bus := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 10000, BlockPublishUntilSubscriberAck: true}, watermill.NopLogger{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := consume(t, ctx, bus)
	cps := &memCheckpoints{}
	obs := &lagObserver{}
	r, err := New(Config{Log: store, Publisher: bus, Checkpoints: cps, BatchSize: 64, Lanes: 4, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	c.waitDistinct(t, len(log))
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	checkPerCustomerOrder(t, c.received)
	for _, e := range log {
		m := c.received[0]
		for _, r := range c.received {
			if r.UUID == e.ID.String() {
				m = r
			}
		}
		if m.UUID != e.ID.String() {
			t.Fatalf("event %s never published", e.ID)
		}
		customer, _ := domain.CustomerIDFromStream(e.Stream)
		want := map[string]string{
			cloudevent.KeyID: e.ID.String(), cloudevent.KeyType: "kyc.customer.NoteAdded", cloudevent.KeySubject: customer,
			cloudevent.KeySpecVersion: "1.0", cloudevent.KeyPartition: customer, cloudevent.KeyDataSchema: "urn:kyc:schema:events:NoteAdded.v1",
			cloudevent.KeyPosition: cloudevent.FormatPosition(e.Position), cloudevent.KeyRevision: strconv.FormatUint(e.Revision, 10),
		}
		for k, v := range want {
			if got := m.Metadata.Get(k); got != v {
				t.Fatalf("event %s: metadata %s = %q, want %q", e.ID, k, got, v)
			}
		}
		if string(m.Payload) != string(e.Data) {
			t.Fatalf("event %s: payload %s, want %s", e.ID, m.Payload, e.Data)
		}
	}
	obs.mu.Lock()
	if obs.published != len(log) || obs.lastLag != 0 {
		t.Fatalf("observer saw %d published and a final lag of %d, want %d and 0", obs.published, obs.lastLag, len(log))
	}
	obs.mu.Unlock()
	if got, _ := cps.Checkpoint(ctx, "relay"); got != log[len(log)-1].Position {
		t.Fatalf("checkpoint %s, want the last event's %s", got, log[len(log)-1].Position)
	}
}

// TestRelayRestartLosesNothing: a broker that refuses publishes mid-stream
// and a relay stopped and started again: every event arrives, the
// checkpoint never passes an unacknowledged event, and redeliveries carry
// the same message id.
func TestRelayRestartLosesNothing(t *testing.T) {
	store := memory.New()
	log := appendEvents(t, store, 10, 40)
	bus := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 10000, BlockPublishUntilSubscriberAck: true}, watermill.NopLogger{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := consume(t, ctx, bus)
	cps := &memCheckpoints{}
	pub := &flaky{Publisher: bus, failAfter: 150}
	r, err := New(Config{Log: store, Publisher: pub, Checkpoints: cps, BatchSize: 32, RetryInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	// Let it fail a few times, then stop it like a killed process.
	time.Sleep(50 * time.Millisecond)
	stop()
	<-done
	saved, _ := cps.Checkpoint(ctx, "relay")
	c.mu.Lock()
	for _, e := range log {
		if !saved.Less(e.Position) && c.byID[e.ID.String()] == 0 {
			t.Fatalf("checkpoint %s passed event %s at %s that never reached the consumer", saved, e.ID, e.Position)
		}
	}
	c.mu.Unlock()

	pub.healed.Store(true)
	r2, err := New(Config{Log: store, Publisher: pub, Checkpoints: cps, BatchSize: 32})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop = context.WithCancel(ctx)
	go func() { done <- r2.Run(runCtx) }()
	c.waitDistinct(t, len(log))
	stop()
	<-done
	c.mu.Lock()
	defer c.mu.Unlock()
	checkPerCustomerOrder(t, c.received)
	if len(c.received) < len(log) {
		t.Fatalf("received %d messages for %d events", len(c.received), len(log))
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	bus := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	for name, cfg := range map[string]Config{
		"no log":         {Publisher: bus, Checkpoints: &memCheckpoints{}},
		"no publisher":   {Log: memory.New(), Checkpoints: &memCheckpoints{}},
		"no checkpoints": {Log: memory.New(), Publisher: bus},
		"negative lanes": {Log: memory.New(), Publisher: bus, Checkpoints: &memCheckpoints{}, Lanes: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
