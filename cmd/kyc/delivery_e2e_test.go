package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/delivery/bus"
	"github.com/kycengine/kyc/adapters/delivery/bus/natstest"
	"github.com/kycengine/kyc/adapters/delivery/cloudevent"
	"github.com/kycengine/kyc/adapters/delivery/relay"
	"github.com/kycengine/kyc/adapters/delivery/state"
	"github.com/kycengine/kyc/adapters/eventstore/embedded"
	"github.com/kycengine/kyc/domain"
)

// TestRelayKilledMidStreamLosesNothing runs kyc serve publishing to NATS
// JetStream with a backlog of stored events and a write load, kills it with
// SIGKILL while the relay is still working through the backlog (checked:
// its saved checkpoint is short of the log's end), restarts it, and checks
// downstream: every stored event arrived, each message's id is its event's
// id (so the redeliveries a crash causes are recognisable), and kyc
// subscribe prints the status changes as CloudEvents.
func TestRelayKilledMidStreamLosesNothing(t *testing.T) {
	natsURL := natstest.Start(t)
	dir := t.TempDir()
	keys := writeKeys(t, dir)
	data := filepath.Join(dir, "data")

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	consumer, err := bus.Open(ctx, natsURL, bus.Options{Group: "e2e", FromStart: true})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var (
		mu       sync.Mutex
		seen     = map[string]int{}
		mismatch string
	)
	// A backlog the relay needs a few seconds to publish.
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	backlog, err := embedded.Open(ctx, filepath.Join(data, storeFile))
	if err != nil {
		t.Fatal(err)
	}
	for c := range 2000 {
		events := make([]domain.EventData, 20)
		for i := range events {
			events[i] = domain.EventData{ID: uuid.New(), Type: "NoteAdded", SchemaVersion: 1, OccurredAt: time.Now().UTC(),
				Actor: domain.Actor{Kind: domain.ActorOperator, ID: "seed", Company: "acme"}, Data: json.RawMessage(`{"text":"backlog"}`)}
		}
		if _, err := backlog.Append(ctx, domain.StreamName(fmt.Sprintf("backlog-%04d", c)), domain.ExpectNoStream, events); err != nil {
			t.Fatal(err)
		}
	}
	if err := backlog.Close(); err != nil {
		t.Fatal(err)
	}

	s := startServer(t, data, keys, "--bus", natsURL)
	msgs, err := consumer.Subscriber().Subscribe(ctx, relay.DefaultTopic)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for m := range msgs {
			mu.Lock()
			if id := m.Metadata.Get(cloudevent.KeyID); id != m.UUID {
				mismatch = m.UUID + " carries event " + id
			}
			seen[m.UUID]++
			mu.Unlock()
			m.Ack()
		}
	}()

	load := func(s *server, d time.Duration) {
		stop, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for stop.Err() == nil {
					code, body, err := s.call("POST", "/v1/customers", e2eRegistration)
					if err != nil || code != 201 {
						return
					}
					id := body["id"].(string)
					if _, _, err := s.call("POST", "/v1/customers/"+id+"/status", `{"status":"PENDING_REVIEW"}`); err != nil {
						return
					}
				}
			})
		}
		wg.Wait()
	}
	go func() {
		time.Sleep(700 * time.Millisecond)
		s.kill()
	}()
	load(s, 2*time.Second)
	// The relay was killed mid-stream: its checkpoint is short of the log.
	checkpoint := relayCheckpoint(t, ctx, data)
	tail := logTail(t, ctx, data)
	if !checkpoint.Less(tail) {
		t.Fatalf("the relay had published everything (checkpoint %s, log ends at %s) before the kill; the test proves nothing", checkpoint, tail)
	}
	t.Logf("killed with the relay at %s of %s", checkpoint, tail)
	s = startServer(t, data, keys, "--bus", natsURL)
	load(s, time.Second)

	// Everything stored must arrive; wait for it, then compare.
	s.stop()
	store, err := embedded.OpenReadOnly(ctx, filepath.Join(data, storeFile))
	if err != nil {
		t.Fatal(err)
	}
	log, err := store.ReadAll(ctx, domain.Start, 0)
	store.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(log) < 40_100 {
		t.Fatalf("only %d events stored; the load did not run", len(log))
	}
	s = startServer(t, data, keys, "--bus", natsURL) // the relay publishes what the kill left behind
	// The consumer takes one message at a time, so on a machine busy with
	// other tests 40,000 messages can take minutes: the test fails when
	// delivery stops making progress, not after a fixed time.
	const stall = 30 * time.Second
	waitStart := time.Now()
	deadline, received := waitStart.Add(stall), 0
	for {
		mu.Lock()
		if len(seen) > received {
			received, deadline = len(seen), time.Now().Add(stall)
		}
		missing := ""
		for _, e := range log {
			if seen[e.ID.String()] == 0 {
				missing = e.ID.String()
				break
			}
		}
		bad := mismatch
		duplicates := 0
		for _, n := range seen {
			duplicates += n - 1
		}
		mu.Unlock()
		if bad != "" {
			t.Fatalf("message id differs from the event id: %s", bad)
		}
		if missing == "" {
			t.Logf("%d events stored, all received downstream (%d redeliveries) %s after the last start", len(log), duplicates, time.Since(waitStart).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s never arrived downstream (of %d stored); nothing new arrived for %s, %d distinct received", missing, len(log), stall, received)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()

	// The reference consumer prints the status changes as CloudEvents.
	statusChanges := 0
	for _, e := range log {
		if e.Type == "StatusChanged" {
			statusChanges++
		}
	}
	sub := exec.CommandContext(ctx, kycBinary, "subscribe", "--bus", natsURL, "--from-start", "--type", "StatusChanged")
	out, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	sub.Stderr = &stderr
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Process.Kill(); _ = sub.Wait() }()
	lines := bufio.NewScanner(out)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	printed := map[string]bool{}
	timeout := time.AfterFunc(60*time.Second, func() { _ = sub.Process.Kill() })
	defer timeout.Stop()
	for len(printed) < statusChanges && lines.Scan() {
		var ev struct {
			SpecVersion string          `json:"specversion"`
			ID          string          `json:"id"`
			Type        string          `json:"type"`
			Subject     string          `json:"subject"`
			Data        json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(lines.Bytes(), &ev); err != nil {
			t.Fatalf("kyc subscribe printed %q: %v", lines.Text(), err)
		}
		if ev.SpecVersion != "1.0" || ev.Type != "kyc.customer.StatusChanged" || ev.Subject == "" || len(ev.Data) == 0 {
			t.Fatalf("kyc subscribe printed %s", lines.Text())
		}
		if printed[ev.ID] {
			t.Fatalf("kyc subscribe printed event %s twice", ev.ID)
		}
		printed[ev.ID] = true
	}
	if len(printed) != statusChanges {
		t.Fatalf("kyc subscribe printed %d of %d status changes\n%s", len(printed), statusChanges, strings.TrimSpace(stderr.String()))
	}
}

func relayCheckpoint(t *testing.T, ctx context.Context, data string) domain.Position {
	t.Helper()
	st, err := state.OpenSQLite(ctx, filepath.Join(data, deliveryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pos, err := st.Checkpoint(ctx, "relay")
	if err != nil {
		t.Fatal(err)
	}
	return pos
}

func logTail(t *testing.T, ctx context.Context, data string) domain.Position {
	t.Helper()
	store, err := embedded.OpenReadOnly(ctx, filepath.Join(data, storeFile))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	pos, err := store.Tail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return pos
}
