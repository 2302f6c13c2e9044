package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/delivery/bus"
	"github.com/kycengine/kyc/adapters/delivery/bus/natstest"
	"github.com/kycengine/kyc/adapters/delivery/cloudevent"
	"github.com/kycengine/kyc/adapters/delivery/live"
	"github.com/kycengine/kyc/adapters/delivery/relay"
	"github.com/kycengine/kyc/adapters/delivery/state"
	"github.com/kycengine/kyc/adapters/delivery/webhook"
	"github.com/kycengine/kyc/adapters/eventstore/embedded"
	"github.com/kycengine/kyc/domain"
)

// Delivery targets of the delivery issue.
const (
	targetDeliveryP99   = 20 * time.Millisecond
	targetRelayInMemory = 50_000
	targetRelayNATS     = 20_000
)

const (
	relayEvents     = 100_000
	relayCustomers  = 10_000
	latencyEvents   = 2_000
	latencyInterval = 2 * time.Millisecond
)

// BenchmarkDelivery measures the relay and the live socket:
//
//	(a) the transport alone: 8 publishers, batches of 256, until the broker
//	    acknowledged all (the ceiling the relay publishes under)
//	(b) the relay publishing a stored log of 100,000 events from its
//	    checkpoint until the checkpoint reaches the end, ratio to (a)
//	(c) append-to-consumer latency p50/p99 while one writer appends every 2 ms:
//	    through the relay to a bus consumer, and to a live profile WebSocket.
func BenchmarkDelivery(b *testing.B) {
	dir := b.TempDir()
	store := filledStore(b, filepath.Join(dir, "events.db"))
	natsURL := natstest.Start(b)

	var out strings.Builder
	w := tabwriter.NewWriter(&out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "transport\t(a) publish events/s\t(b) relay events/s\tratio\ttarget\t")
	for _, tr := range []struct {
		name, url string
		webhooks  bool
		target    float64
	}{
		{"in-process channel", "", false, targetRelayInMemory},
		{"in-process channel, webhook fan-out listening (as kyc serve)", "", true, targetRelayInMemory},
		{"NATS JetStream", natsURL, false, targetRelayNATS},
	} {
		raw := rawPublish(b, tr.url)
		rate := relayRate(b, store, tr.url, filepath.Join(dir, "state-"+uuid.NewString()[:8]+".db"), tr.webhooks)
		verdict := "met"
		if rate < tr.target {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "%s\t%.0f\t%.0f\t%.2f\t>= %.0f %s\t\n", tr.name, raw, rate, rate/raw, tr.target, verdict)
	}
	w.Flush()

	fmt.Fprintf(&out, "\n(c) append to consumer, %d events, one every %s (target p99 <= %s)\n\n", latencyEvents, latencyInterval, targetDeliveryP99)
	w = tabwriter.NewWriter(&out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "path\tp50\tp99\tmax\ttarget\t")
	for _, p := range []struct {
		name string
		run  func(b *testing.B, dir string) []time.Duration
	}{
		{"append -> relay -> in-process channel", func(b *testing.B, dir string) []time.Duration { return busLatency(b, dir, "") }},
		{"append -> relay -> NATS JetStream", func(b *testing.B, dir string) []time.Duration { return busLatency(b, dir, natsURL) }},
		{"append -> live profile WebSocket", socketLatency},
	} {
		ls := p.run(b, b.TempDir())
		p99 := percentile(ls, .99)
		verdict := "met"
		if p99 > targetDeliveryP99 {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t<= %s %s\t\n", p.name, percentile(ls, .5).Round(10*time.Microsecond), p99.Round(10*time.Microsecond),
			percentile(ls, 1).Round(10*time.Microsecond), targetDeliveryP99, verdict)
	}
	w.Flush()
	fmt.Print("\n" + out.String() + "\n")
}

// filledStore appends relayEvents events to relayCustomers customers in
// batches, the way a busy day's log looks to a relay that starts from zero.
func filledStore(b *testing.B, path string) *embedded.Store {
	store, err := embedded.Open(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	per := relayEvents / relayCustomers
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for c := w; c < relayCustomers; c += 8 {
				// Each history opens with the registration, which names the
				// customer's company to the webhook fan-out.
				events := make([]domain.EventData, per)
				events[0] = benchRegistration()
				for i := 1; i < per; i++ {
					events[i] = benchEvent()
				}
				if _, err := store.Append(context.Background(), domain.StreamName(fmt.Sprintf("relay-%05d", c)), domain.ExpectNoStream, events); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return store
}

func benchRegistration() domain.EventData {
	e := benchEvent()
	e.Type = domain.CustomerRegistered{}.EventType()
	e.Data = json.RawMessage(`{"company_id":"acme","first_name":"Ada","last_name":"Lovelace","email":"ada@example.com"}`)
	return e
}

func benchEvent() domain.EventData {
	return domain.EventData{ID: uuid.New(), Type: "StatusChanged", SchemaVersion: 1, OccurredAt: time.Now().UTC(),
		Actor: domain.Actor{Kind: domain.ActorOperator, ID: "alice", Company: "acme"}, Data: json.RawMessage(sampleData)}
}

// drain acks everything a subscription receives and counts distinct
// events; on the in-process channel a publish waits for this ack.
type drain struct {
	mu   sync.Mutex
	seen map[string]time.Time
	wake chan struct{}
}

func newDrain(b *testing.B, ctx context.Context, bs *bus.Bus) *drain {
	msgs, err := bs.Subscriber().Subscribe(ctx, relay.DefaultTopic)
	if err != nil {
		b.Fatal(err)
	}
	d := &drain{seen: map[string]time.Time{}, wake: make(chan struct{}, 1)}
	go func() {
		for m := range msgs {
			now := time.Now()
			d.mu.Lock()
			if _, ok := d.seen[m.UUID]; !ok {
				d.seen[m.UUID] = now
			}
			d.mu.Unlock()
			m.Ack()
			select {
			case d.wake <- struct{}{}:
			default:
			}
		}
	}()
	return d
}

func (d *drain) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}

func (d *drain) waitFor(b *testing.B, n int, timeout time.Duration) {
	deadline := time.After(timeout)
	for d.count() < n {
		select {
		case <-d.wake:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			b.Fatalf("consumer received %d of %d events", d.count(), n)
		}
	}
}

// rawPublish is (a): 8 goroutines publishing batches of 256 messages.
func rawPublish(b *testing.B, url string) float64 {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bs := openBus(b, ctx, url, "raw")
	defer bs.Close()
	// On the in-process channel a publish returns once a subscriber acked
	// it, so one must listen; a broker stores without one.
	var d *drain
	if bs.Kind() == bus.KindMemory {
		d = newDrain(b, ctx, bs)
	}
	const per = 256
	batches := relayEvents / per / 8
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range batches {
				msgs := make([]*message.Message, per)
				for j := range msgs {
					e := domain.RecordedEvent{EventData: benchEvent(), Stream: domain.StreamName(fmt.Sprintf("raw-%d-%d", w, j%32)), Revision: uint64(i)}
					msgs[j] = cloudevent.ToMessage(e, "")
				}
				if err := bs.Publisher().Publish(relay.DefaultTopic, msgs...); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	total := batches * per * 8
	if d != nil {
		d.waitFor(b, total, time.Minute)
	}
	return float64(total) / time.Since(start).Seconds()
}

// relayRate is (b): a relay with no checkpoint publishes the whole stored
// log; the rate counts until its checkpoint reaches the last event, that is
// until the broker acknowledged everything.
func relayRate(b *testing.B, store *embedded.Store, url, statePath string, webhooks bool) float64 {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bs := openBus(b, ctx, url, "relay")
	defer bs.Close()
	st := openState(b, ctx, statePath)
	defer st.Close()
	switch {
	case webhooks:
		// kyc serve's in-process subscriber: the webhook fan-out, with one
		// endpoint registered (for another company, so nothing is sent).
		hooks, err := webhook.NewService(webhook.Config{Store: st,
			CompanyOf: func(context.Context, string) (string, error) { return "acme", nil }})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := hooks.CreateEndpoint(ctx, webhook.EndpointInput{Company: "globex", URL: "http://127.0.0.1:9/hook"}); err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = hooks.Run(ctx, bs.Subscriber())
		}()
		defer func() { cancel(); <-done }()
		<-hooks.Started()
	case bs.Kind() == bus.KindMemory:
		newDrain(b, ctx, bs)
	}
	last, err := store.Tail(ctx)
	if err != nil {
		b.Fatal(err)
	}
	r, err := relay.New(relay.Config{Log: store, Publisher: bs.Publisher(), Checkpoints: st})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for deadline := start.Add(5 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
		pos, err := st.Checkpoint(ctx, "relay")
		if err != nil {
			b.Fatal(err)
		}
		if pos == last {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the relay reached %s of %s in 5 minutes", pos, last)
		}
	}
	elapsed := time.Since(start)
	cancel()
	<-done
	return float64(relayEvents) / elapsed.Seconds()
}

// appendPaced appends latencyEvents events, one every latencyInterval, the
// i-th to stream(i), and returns when each append started.
func appendPaced(b *testing.B, store domain.EventStore, stream func(i int) string) map[string]time.Time {
	sent := make(map[string]time.Time, latencyEvents)
	tick := time.NewTicker(latencyInterval)
	defer tick.Stop()
	for i := range latencyEvents {
		<-tick.C
		e := benchEvent()
		t0 := time.Now()
		if _, err := store.Append(context.Background(), stream(i), domain.ExpectAny, []domain.EventData{e}); err != nil {
			b.Fatal(err)
		}
		sent[e.ID.String()] = t0
	}
	return sent
}

// openBus opens a transport for one measurement, with a consumer group of
// its own.
func openBus(b *testing.B, ctx context.Context, url, role string) *bus.Bus {
	bs, err := bus.Open(ctx, url, bus.Options{Group: "bench-" + role + "-" + uuid.NewString()[:8]})
	if err != nil {
		b.Fatal(err)
	}
	return bs
}

func openState(b *testing.B, ctx context.Context, path string) *state.Store {
	st, err := state.OpenSQLite(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	return st
}

func busLatency(b *testing.B, dir, url string) []time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := embedded.Open(ctx, filepath.Join(dir, "events.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	bs := openBus(b, ctx, url, "lat")
	defer bs.Close()
	st := openState(b, ctx, filepath.Join(dir, "delivery.db"))
	defer st.Close()
	d := newDrain(b, ctx, bs)
	r, err := relay.New(relay.Config{Log: store, Publisher: bs.Publisher(), Checkpoints: st})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	sent := appendPaced(b, store, func(i int) string { return domain.StreamName(fmt.Sprintf("lat-%d", i)) })
	d.waitFor(b, latencyEvents, time.Minute)
	cancel()
	<-done
	d.mu.Lock()
	defer d.mu.Unlock()
	var ls []time.Duration
	for id, t0 := range sent {
		ls = append(ls, d.seen[id].Sub(t0))
	}
	return ls
}

func socketLatency(b *testing.B, dir string) []time.Duration {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := embedded.Open(ctx, filepath.Join(dir, "events.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	tokens, err := live.NewTokens([]byte(strings.Repeat("k", 32)), time.Hour, nil)
	if err != nil {
		b.Fatal(err)
	}
	hub, err := live.NewHub(store, nil)
	if err != nil {
		b.Fatal(err)
	}
	go hub.Run(ctx)
	socket, err := live.NewSocket(hub, tokens, live.SocketOptions{Buffer: 4096})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(socket)
	defer srv.Close()
	// One customer, so every event goes to the one socket.
	const customer = "lat-socket"
	token, _, err := tokens.Issue(customer, operator.Actor)
	if err != nil {
		b.Fatal(err)
	}
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/?token="+token, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	if _, _, err := conn.Read(ctx); err != nil { // "subscribed"
		b.Fatal(err)
	}
	received := make(map[string]time.Time, latencyEvents)
	readDone := make(chan error, 1)
	go func() {
		for len(received) < latencyEvents {
			_, data, err := conn.Read(ctx)
			if err != nil {
				readDone <- err
				return
			}
			var m live.Message
			if err := json.Unmarshal(data, &m); err != nil {
				readDone <- err
				return
			}
			received[m.EventID] = time.Now()
		}
		readDone <- nil
	}()
	sent := appendPaced(b, store, func(int) string { return domain.StreamName(customer) })
	select {
	case err := <-readDone:
		if err != nil {
			b.Fatal(err)
		}
	case <-time.After(time.Minute):
		b.Fatal("the socket did not receive every event")
	}
	var ls []time.Duration
	for id, t0 := range sent {
		ls = append(ls, received[id].Sub(t0))
	}
	return ls
}
