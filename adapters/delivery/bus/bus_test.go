package bus_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/kycengine/kyc/adapters/delivery/bus"
	"github.com/kycengine/kyc/adapters/delivery/bus/natstest"
	"github.com/kycengine/kyc/adapters/delivery/cloudevent"
	"github.com/kycengine/kyc/adapters/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const topic = "kyc.events"

// transport is one backend of the conformance suite: newURL gives a fresh,
// empty instance for one test, which every Open in that test shares.
type transport struct {
	kind    string
	durable bool // keeps messages and consumer positions across Opens
	newURL  func(t *testing.T) string
}

var transports = []transport{
	{kind: bus.KindMemory, newURL: func(*testing.T) string { return "memory://" }},
	{kind: bus.KindNATS, durable: true, newURL: func(t *testing.T) string { return natstest.Start(t) }},
	{kind: bus.KindPostgres, durable: true, newURL: func(t *testing.T) string { return pgtest.NewDatabase(t) }},
}

// forEach runs test once per transport, in parallel.
func forEach(t *testing.T, durableOnly bool, test func(t *testing.T, tr transport, url string)) {
	t.Helper()
	for _, tr := range transports {
		t.Run(tr.kind, func(t *testing.T) {
			if durableOnly && !tr.durable {
				t.Skipf("%s keeps no messages or positions", tr.kind)
			}
			t.Parallel()
			test(t, tr, tr.newURL(t))
		})
	}
}

// testOptions keep redeliveries fast.
func testOptions(o bus.Options) bus.Options {
	if o.NackDelay == 0 {
		o.NackDelay = 10 * time.Millisecond
	}
	if o.PollInterval == 0 {
		o.PollInterval = 20 * time.Millisecond
	}
	return o
}

func open(t *testing.T, url string, opts bus.Options) *bus.Bus {
	t.Helper()
	b, err := bus.Open(t.Context(), url, testOptions(opts))
	if err != nil {
		t.Fatalf("Open(%q): %v", url, err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func subscribe(t *testing.T, b *bus.Bus) <-chan *message.Message {
	t.Helper()
	ch, err := b.Subscriber().Subscribe(t.Context(), topic)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	return ch
}

// newMsg is a message of partition p with sequence number seq.
func newMsg(p string, seq int) *message.Message {
	m := message.NewMessage(watermill.NewUUID(), fmt.Appendf(nil, `{"seq":%d}`, seq))
	m.Metadata.Set(bus.PartitionKey, p)
	m.Metadata.Set("seq", strconv.Itoa(seq))
	return m
}

func seqOf(t *testing.T, m *message.Message) int {
	t.Helper()
	n, err := strconv.Atoi(m.Metadata.Get("seq"))
	if err != nil {
		t.Fatalf("message %s has no seq: %v", m.UUID, err)
	}
	return n
}

// publishAsync publishes in the background: the memory transport's Publish
// returns only once the subscriber has acked, so the test must be reading.
func publishAsync(b *bus.Bus, msgs ...*message.Message) <-chan error {
	done := make(chan error, 1)
	go func() { done <- b.Publisher().Publish(topic, msgs...) }()
	return done
}

func waitPublished(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Publish did not return")
	}
}

func next(t *testing.T, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("subscription closed")
		}
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no message within 30s")
	}
	return nil
}

func nothing(t *testing.T, ch <-chan *message.Message, wait time.Duration) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("unexpected message seq=%s", m.Metadata.Get("seq"))
	case <-time.After(wait):
	}
}

func TestPartitionKeyIsTheRelays(t *testing.T) {
	if bus.PartitionKey != cloudevent.KeyPartition {
		t.Fatalf("bus.PartitionKey = %q, cloudevent.KeyPartition = %q", bus.PartitionKey, cloudevent.KeyPartition)
	}
}

func TestKind(t *testing.T) {
	forEach(t, false, func(t *testing.T, tr transport, url string) {
		if got := open(t, url, bus.Options{}).Kind(); got != tr.kind {
			t.Fatalf("Kind() = %q, want %q", got, tr.kind)
		}
	})
	if got := open(t, "", bus.Options{}).Kind(); got != bus.KindMemory {
		t.Fatalf(`Open("").Kind() = %q`, got)
	}
}

func TestRoundTrip(t *testing.T) {
	forEach(t, false, func(t *testing.T, tr transport, url string) {
		b := open(t, url, bus.Options{})
		ch := subscribe(t, b)
		want := message.NewMessage("5f0c7a8e-2d7b-4e56-9a44-0b3c1f8e9d21", []byte(`{"status":"approved","n":1}`))
		want.Metadata = message.Metadata{
			"ce_id":          want.UUID,
			"ce_type":        "kyc.customer.CustomerApproved",
			"ce_subject":     "cus_42",
			"ce_time":        "2026-01-02T03:04:05.123456789Z",
			"kyc_stream":     "customer-cus_42",
			"kyc_revision":   "7",
			"kyc_position":   "1234",
			bus.PartitionKey: "cus_42",
		}
		done := publishAsync(b, want)
		got := next(t, ch)
		got.Ack()
		waitPublished(t, done)
		if got.UUID != want.UUID {
			t.Errorf("UUID = %q, want %q", got.UUID, want.UUID)
		}
		if string(got.Payload) != string(want.Payload) {
			t.Errorf("payload = %s, want %s", got.Payload, want.Payload)
		}
		if len(got.Metadata) != len(want.Metadata) {
			t.Errorf("metadata = %v, want %v", got.Metadata, want.Metadata)
		}
		for k, v := range want.Metadata {
			if got.Metadata.Get(k) != v {
				t.Errorf("metadata %s = %q, want %q", k, got.Metadata.Get(k), v)
			}
		}
	})
}

// TestConcurrentPublishersKeepPartitionOrder is the relay's load: several
// lanes publishing batches at once, each lane owning a few partitions
// (customers) whose messages interleave within its batches.
func TestConcurrentPublishersKeepPartitionOrder(t *testing.T) {
	const publishers, perPublisher, partitionsPerPublisher = 8, 250, 5
	forEach(t, false, func(t *testing.T, tr transport, url string) {
		b := open(t, url, bus.Options{FromStart: true})
		ch := subscribe(t, b)

		errs := make(chan error, publishers)
		var wg sync.WaitGroup
		for p := range publishers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(p), 1))
				for i := 0; i < perPublisher; {
					var batch []*message.Message
					for n := 1 + rng.IntN(40); n > 0 && i < perPublisher; n-- {
						part := fmt.Sprintf("cus_%d_%d", p, i%partitionsPerPublisher)
						batch = append(batch, newMsg(part, i/partitionsPerPublisher+1))
						i++
					}
					if err := b.Publisher().Publish(topic, batch...); err != nil {
						errs <- err
						return
					}
				}
			})
		}

		highest := map[string]int{}
		seen := map[string]bool{}
		deadline := time.After(2 * time.Minute)
		for len(seen) < publishers*perPublisher {
			select {
			case m := <-ch:
				part, seq := m.Metadata.Get(bus.PartitionKey), seqOf(t, m)
				// At least once: a repeat of an older message is allowed,
				// skipping ahead is not.
				if seq > highest[part]+1 {
					t.Fatalf("partition %s: got seq %d after %d", part, seq, highest[part])
				}
				highest[part] = max(highest[part], seq)
				seen[m.UUID] = true
				m.Ack()
			case err := <-errs:
				t.Fatalf("Publish: %v", err)
			case <-deadline:
				t.Fatalf("received %d of %d messages", len(seen), publishers*perPublisher)
			}
		}
		wg.Wait()
		if len(highest) != publishers*partitionsPerPublisher {
			t.Errorf("got %d partitions, want %d", len(highest), publishers*partitionsPerPublisher)
		}
		for part, got := range highest {
			if want := perPublisher / partitionsPerPublisher; got != want {
				t.Errorf("partition %s ended at seq %d, want %d", part, got, want)
			}
		}
	})
}

// The in-process transport hands a subscription messages of different
// partitions before the earlier ones are acked, so a router handles them
// in parallel, but never two of one partition.
func TestMemoryHoldsOneMessagePerPartition(t *testing.T) {
	b := open(t, "memory://", bus.Options{})
	ch := subscribe(t, b)
	var msgs []*message.Message
	for i := range 32 {
		msgs = append(msgs, newMsg(fmt.Sprintf("cus_%d", i), 1))
	}
	msgs = append(msgs, newMsg("cus_0", 2))
	done := publishAsync(b, msgs...)

	// 32 keys fill all 8 partitions; cus_0's second message waits for its
	// first, so exactly 8 arrive unacked.
	var held []*message.Message
	for range 8 {
		select {
		case m := <-ch:
			held = append(held, m)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d messages in hand before any ack, want 8", len(held))
		}
	}
	nothing(t, ch, 200*time.Millisecond)
	got := map[string]int{}
	for len(got) < len(msgs) {
		for _, m := range held {
			got[m.UUID]++
			if part, seq := m.Metadata.Get(bus.PartitionKey), seqOf(t, m); part == "cus_0" && seq == 2 && got[msgs[0].UUID] == 0 {
				t.Fatal("cus_0's second message came before its first")
			}
			m.Ack()
		}
		held = held[:0]
		if len(got) < len(msgs) {
			held = append(held, next(t, ch))
		}
	}
	waitPublished(t, done)
}

func TestNackRedeliversBeforeLaterMessages(t *testing.T) {
	forEach(t, false, func(t *testing.T, tr transport, url string) {
		b := open(t, url, bus.Options{})
		ch := subscribe(t, b)
		done := publishAsync(b, newMsg("cus_1", 1), newMsg("cus_1", 2), newMsg("cus_1", 3))

		first := next(t, ch)
		if seq := seqOf(t, first); seq != 1 {
			t.Fatalf("first delivery is seq %d", seq)
		}
		first.Nack()
		again := next(t, ch)
		if again.UUID != first.UUID {
			t.Fatalf("after Nack got seq %d, want seq 1 again", seqOf(t, again))
		}
		again.Ack()
		for want := 2; want <= 3; want++ {
			m := next(t, ch)
			if seq := seqOf(t, m); seq != want {
				t.Fatalf("got seq %d, want %d", seq, want)
			}
			m.Ack()
		}
		waitPublished(t, done)
	})
}

// TestGroupResumesAfterRestart: what a group acked stays acked, what it
// held without acking comes back, first, to the next run.
func TestGroupResumesAfterRestart(t *testing.T) {
	forEach(t, true, func(t *testing.T, tr transport, url string) {
		opts := bus.Options{Group: "webhooks", FromStart: true}
		first := open(t, url, opts)
		ch := subscribe(t, first)
		var msgs []*message.Message
		for seq := 1; seq <= 10; seq++ {
			msgs = append(msgs, newMsg("cus_1", seq))
		}
		waitPublished(t, publishAsync(first, msgs...))
		for want := 1; want <= 4; want++ {
			m := next(t, ch)
			if seq := seqOf(t, m); seq != want {
				t.Fatalf("got seq %d, want %d", seq, want)
			}
			m.Ack()
		}
		if seq := seqOf(t, next(t, ch)); seq != 5 { // held, never acked
			t.Fatalf("got seq %d, want 5", seq)
		}
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}

		second := open(t, url, opts)
		ch = subscribe(t, second)
		for want := 5; want <= 10; want++ {
			m := next(t, ch)
			if seq := seqOf(t, m); seq != want {
				t.Fatalf("after restart got seq %d, want %d", seq, want)
			}
			m.Ack()
		}
		nothing(t, ch, 200*time.Millisecond)
	})
}

func TestGroupMembersShareTheWork(t *testing.T) {
	forEach(t, true, func(t *testing.T, tr transport, url string) {
		opts := bus.Options{Group: "workers", FromStart: true}
		a, b := open(t, url, opts), open(t, url, opts)
		chA, chB := subscribe(t, a), subscribe(t, b)
		const n = 100
		var msgs []*message.Message
		for seq := 1; seq <= n; seq++ {
			msgs = append(msgs, newMsg(fmt.Sprintf("cus_%d", seq%7), seq))
		}
		waitPublished(t, publishAsync(a, msgs...))
		seen := map[int]bool{}
		for len(seen) < n {
			var m *message.Message
			select {
			case m = <-chA:
			case m = <-chB:
			case <-time.After(30 * time.Second):
				t.Fatalf("group received %d of %d", len(seen), n)
			}
			seen[seqOf(t, m)] = true
			m.Ack()
		}
		// Neither member gets anything twice once all is acked.
		nothing(t, chA, 100*time.Millisecond)
		nothing(t, chB, 100*time.Millisecond)
	})
}

func TestFromStart(t *testing.T) {
	forEach(t, true, func(t *testing.T, tr transport, url string) {
		pub := open(t, url, bus.Options{})
		var old []*message.Message
		for seq := 1; seq <= 3; seq++ {
			old = append(old, newMsg("cus_1", seq))
		}
		waitPublished(t, publishAsync(pub, old...)) // nobody subscribed yet

		fromStart := subscribe(t, open(t, url, bus.Options{FromStart: true}))
		onlyNew := subscribe(t, open(t, url, bus.Options{}))
		newGroup := subscribe(t, open(t, url, bus.Options{Group: "late"}))
		waitPublished(t, publishAsync(pub, newMsg("cus_1", 4), newMsg("cus_1", 5)))

		for want := 1; want <= 5; want++ {
			m := next(t, fromStart)
			if seq := seqOf(t, m); seq != want {
				t.Fatalf("FromStart: got seq %d, want %d", seq, want)
			}
			m.Ack()
		}
		for name, ch := range map[string]<-chan *message.Message{"only new": onlyNew, "new group": newGroup} {
			for want := 4; want <= 5; want++ {
				m := next(t, ch)
				if seq := seqOf(t, m); seq != want {
					t.Fatalf("%s: got seq %d, want %d", name, seq, want)
				}
				m.Ack()
			}
		}
	})
}

func TestSubscriptionEndsWithContext(t *testing.T) {
	forEach(t, false, func(t *testing.T, tr transport, url string) {
		b := open(t, url, bus.Options{})
		ctx, cancel := context.WithCancel(t.Context())
		ch, err := b.Subscriber().Subscribe(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		select {
		case _, ok := <-ch:
			if ok {
				t.Fatal("message after cancel")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("channel not closed after cancel")
		}
	})
}

func TestClosedBusRefusesWork(t *testing.T) {
	forEach(t, false, func(t *testing.T, tr transport, url string) {
		b := open(t, url, bus.Options{})
		ch := subscribe(t, b)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		select {
		case _, ok := <-ch:
			if ok {
				t.Fatal("message after Close")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("subscription not closed by Close")
		}
		if err := b.Publisher().Publish(topic, newMsg("cus_1", 1)); !errors.Is(err, bus.ErrClosed) {
			t.Errorf("Publish after Close: %v, want ErrClosed", err)
		}
		if _, err := b.Subscriber().Subscribe(t.Context(), topic); !errors.Is(err, bus.ErrClosed) {
			t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
		}
	})
}

func TestInvalidTopic(t *testing.T) {
	forEach(t, false, func(t *testing.T, tr transport, url string) {
		b := open(t, url, bus.Options{})
		for _, bad := range []string{"", "kyc events", "kyc.*", "kyc.>", "kyc..events", `x"; DROP TABLE y; --`, strings.Repeat("x", 46)} {
			if err := b.Publisher().Publish(bad, newMsg("cus_1", 1)); !errors.Is(err, bus.ErrInvalidTopic) {
				t.Errorf("Publish(%q): %v, want ErrInvalidTopic", bad, err)
			}
			if _, err := b.Subscriber().Subscribe(t.Context(), bad); !errors.Is(err, bus.ErrInvalidTopic) {
				t.Errorf("Subscribe(%q): %v, want ErrInvalidTopic", bad, err)
			}
		}
	})
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name, url string
		opts      bus.Options
		want      error
		mention   string
	}{
		{name: "unknown scheme", url: "kafka://broker:9092", want: bus.ErrUnsupportedScheme, mention: "kafka"},
		{name: "no scheme", url: "localhost:4222", want: bus.ErrUnsupportedScheme},
		{name: "memory with a host", url: "memory://x", want: bus.ErrInvalidOptions},
		{name: "bad group", url: "memory://", opts: bus.Options{Group: "web hooks"}, want: bus.ErrInvalidOptions, mention: "web hooks"},
		{name: "negative duration", url: "memory://", opts: bus.Options{AckTimeout: -time.Second}, want: bus.ErrInvalidOptions, mention: "AckTimeout"},
		{name: "NATS unreachable", url: "nats://kyc:s3cret@127.0.0.1:1", want: bus.ErrUnavailable, mention: "127.0.0.1:1"},
		{name: "PostgreSQL unreachable", url: "postgres://kyc:s3cret@127.0.0.1:1/kyc?connect_timeout=5", want: bus.ErrUnavailable, mention: "127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := bus.Open(ctx, tc.url, tc.opts)
			if err == nil {
				b.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %q does not wrap %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "bus: ") {
				t.Errorf("error %q does not say it is the bus's", err)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q leaks the password", err)
			}
		})
	}
}

func TestOpenNATSWithoutJetStream(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	b, err := bus.Open(t.Context(), s.ClientURL(), bus.Options{})
	if err == nil {
		b.Close()
		t.Fatal("Open succeeded without JetStream")
	}
	if !errors.Is(err, bus.ErrUnavailable) || !strings.Contains(err.Error(), "JetStream") {
		t.Fatalf("error %q: want ErrUnavailable mentioning JetStream", err)
	}
}
