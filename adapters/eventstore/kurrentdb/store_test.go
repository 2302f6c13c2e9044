package kurrentdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/eventstore/kurrentdb/kurrenttest"
	"github.com/kycengine/kyc/adapters/eventstore/storetest"
	"github.com/kycengine/kyc/domain"
)

// suitePrefixes are the stream prefixes the conformance suite writes to.
var suitePrefixes = []string{DefaultStreamPrefix, "missing-", "a-", "b-", "c-", "marker-"}

func open(t *testing.T, url string, opts ...Option) *Store {
	t.Helper()
	opts = append([]Option{WithStreamPrefixes(suitePrefixes...), WithRetryInterval(50 * time.Millisecond)}, opts...)
	s, err := Open(t.Context(), url, opts...)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the shared suite through the real client against the
// in-process server.
func TestConformance(t *testing.T) {
	srv := kurrenttest.Start(t)
	s := open(t, srv.URL())
	storetest.Run(t, func(t *testing.T) domain.EventStore { return s })
}

// TestConformanceRealServer runs the suite against a real KurrentDB when
// KYC_TEST_KURRENTDB holds its connection string.
func TestConformanceRealServer(t *testing.T) {
	url := os.Getenv("KYC_TEST_KURRENTDB")
	if url == "" {
		t.Skip("KYC_TEST_KURRENTDB is not set; set it to a connection string (esdb://localhost:2113?tls=false) to run the suite against a real KurrentDB")
	}
	s := open(t, url)
	storetest.Run(t, func(t *testing.T) domain.EventStore { return s })
}

func rawClient(t *testing.T, url string) *esdb.Client {
	t.Helper()
	conf, err := esdb.ParseConnectionString(url)
	if err != nil {
		t.Fatal(err)
	}
	conf.Logger = esdb.NoopLogging()
	c, err := esdb.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func event(typ string) domain.EventData {
	return domain.EventData{
		ID: uuid.New(), Type: typ, SchemaVersion: 1, OccurredAt: time.Now().UTC(),
		Actor: domain.Actor{Kind: domain.ActorOperator, ID: "op-1", Company: "acme"},
		Data:  json.RawMessage(`{}`),
	}
}

func stream() string { return domain.StreamName(uuid.NewString()) }

// TestServerRefusesStaleRevision covers the client's wrong-expected-version
// answer: another writer appends between Append's read and its write, the
// server refuses, and the caller gets the port's conflict with the new head.
func TestServerRefusesStaleRevision(t *testing.T) {
	srv := kurrenttest.Start(t)
	raw := rawClient(t, srv.URL())
	var once sync.Once
	sneak := func(name string) {
		once.Do(func() {
			// Written through this store's own encoding, as another process would.
			d, err := encode(event("Sneaked"), "", "")
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := raw.AppendToStream(t.Context(), name, esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(0)}, d); err != nil {
				t.Errorf("sneak an append in: %v", err)
			}
		})
	}
	s := open(t, srv.URL())
	ctx := t.Context()
	name := stream()
	if _, err := s.Append(ctx, name, domain.ExpectNoStream, []domain.EventData{event("Created")}); err != nil {
		t.Fatal(err)
	}
	s.hook = sneak
	_, err := s.Append(ctx, name, domain.ExpectRevision(0), []domain.EventData{event("Updated")})
	var ce *domain.ConflictError
	if !errors.Is(err, domain.ErrConcurrencyConflict) || !errors.As(err, &ce) {
		t.Fatalf("append after another writer moved the stream: got %v, want a concurrency conflict", err)
	}
	if !ce.ActualExists || ce.Actual != 1 {
		t.Fatalf("conflict says the stream is at %d (exists %v), want 1", ce.Actual, ce.ActualExists)
	}

	// Under ExpectAny the store reads again and appends after the intruder.
	name = stream()
	once = sync.Once{}
	s.hook = nil
	if _, err := s.Append(ctx, name, domain.ExpectNoStream, []domain.EventData{event("Created")}); err != nil {
		t.Fatal(err)
	}
	s.hook = sneak
	res, err := s.Append(ctx, name, domain.ExpectAny, []domain.EventData{event("Updated")})
	if err != nil {
		t.Fatalf("append expecting any after another writer moved the stream: %v", err)
	}
	if res.LastRevision != 2 {
		t.Fatalf("append landed at revision %d, want 2", res.LastRevision)
	}
}

func TestMissingStream(t *testing.T) {
	srv := kurrenttest.Start(t)
	s := open(t, srv.URL())
	for _, dir := range []domain.Direction{domain.Forwards, domain.Backwards} {
		if _, err := s.ReadStream(t.Context(), stream(), dir, 0, 0); !errors.Is(err, domain.ErrStreamNotFound) {
			t.Fatalf("read a missing stream: got %v, want ErrStreamNotFound", err)
		}
	}
}

func TestDeletedStream(t *testing.T) {
	srv := kurrenttest.Start(t)
	s := open(t, srv.URL())
	ctx := t.Context()
	name := stream()
	if _, err := s.Append(ctx, name, domain.ExpectNoStream, []domain.EventData{event("Created")}); err != nil {
		t.Fatal(err)
	}
	if _, err := rawClient(t, srv.URL()).TombstoneStream(ctx, name, esdb.TombstoneStreamOptions{ExpectedRevision: esdb.Any{}}); err != nil {
		t.Fatalf("tombstone: %v", err)
	}
	if _, err := s.ReadStream(ctx, name, domain.Forwards, 0, 0); !errors.Is(err, domain.ErrStreamDeleted) {
		t.Fatalf("read a deleted stream: got %v, want ErrStreamDeleted", err)
	}
	if _, err := s.Append(ctx, name, domain.ExpectAny, []domain.EventData{event("Updated")}); !errors.Is(err, domain.ErrStreamDeleted) {
		t.Fatalf("append to a deleted stream: got %v, want ErrStreamDeleted", err)
	}
}

// TestUnavailable: calls fail with ErrStoreUnavailable while the server is
// away, and work again, on the same Store, once it is back.
func TestUnavailable(t *testing.T) {
	srv := kurrenttest.Start(t)
	s := open(t, srv.URL())
	ctx := t.Context()
	name := stream()
	if _, err := s.Append(ctx, name, domain.ExpectNoStream, []domain.EventData{event("Created")}); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	checks := map[string]func() error{
		"Append": func() error {
			_, err := s.Append(ctx, name, domain.ExpectAny, []domain.EventData{event("Updated")})
			return err
		},
		"ReadStream": func() error { _, err := s.ReadStream(ctx, name, domain.Forwards, 0, 0); return err },
		"ReadAll":    func() error { _, err := s.ReadAll(ctx, domain.Start, 10); return err },
	}
	for what, call := range checks {
		if err := call(); !errors.Is(err, domain.ErrStoreUnavailable) {
			t.Fatalf("%s while the server is stopped: got %v, want ErrStoreUnavailable", what, err)
		}
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := s.Append(ctx, name, domain.ExpectRevision(0), []domain.EventData{event("Updated")})
		if err == nil {
			break
		}
		if !errors.Is(err, domain.ErrStoreUnavailable) || time.Now().After(deadline) {
			t.Fatalf("append after the server came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	got, err := s.ReadStream(ctx, name, domain.Forwards, 0, 0)
	if err != nil || len(got) != 2 {
		t.Fatalf("stream after restart: %d events, %v; want 2", len(got), err)
	}
}

func TestOpenUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = Open(t.Context(), fmt.Sprintf("esdb://%s?tls=false&maxDiscoverAttempts=2&discoveryInterval=10", addr))
	if !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("open with nothing listening: got %v, want ErrStoreUnavailable", err)
	}
}

// TestSubscriptionSurvivesRestart: a subscription that loses the server
// resumes from the last event it delivered; nothing is missed or repeated.
func TestSubscriptionSurvivesRestart(t *testing.T) {
	srv := kurrenttest.Start(t)
	s := open(t, srv.URL())
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []uuid.UUID
	done := make(chan error, 1)
	subCtx, stop := context.WithCancel(ctx)
	go func() {
		done <- s.SubscribeAll(subCtx, domain.Start, func(_ context.Context, e domain.RecordedEvent) error {
			mu.Lock()
			got = append(got, e.ID)
			mu.Unlock()
			return nil
		})
	}()
	var want []uuid.UUID
	appendSome := func(n int) {
		for range n {
			e := event("Created")
			for {
				_, err := s.Append(ctx, stream(), domain.ExpectNoStream, []domain.EventData{e})
				if err == nil {
					break
				}
				if !errors.Is(err, domain.ErrStoreUnavailable) {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			want = append(want, e.ID)
		}
	}
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			k := len(got)
			mu.Unlock()
			if k >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("subscription delivered %d of %d events", k, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	appendSome(5)
	waitFor(5)
	srv.Stop()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	appendSome(5)
	waitFor(10)
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("subscription ended with %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

// TestForeignEvent: an event another tool wrote into a log stream without
// the envelope is reported, not turned into a half-empty domain event.
func TestForeignEvent(t *testing.T) {
	srv := kurrenttest.Start(t)
	s := open(t, srv.URL())
	name := stream()
	_, err := rawClient(t, srv.URL()).AppendToStream(t.Context(), name, esdb.AppendToStreamOptions{},
		esdb.EventData{EventID: uuid.New(), EventType: "Other", ContentType: esdb.ContentTypeJson, Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadStream(t.Context(), name, domain.Forwards, 0, 0); !errors.Is(err, ErrForeignEvent) {
		t.Fatalf("read a stream with a foreign event: got %v, want ErrForeignEvent", err)
	}
}

func TestIdempotencyKey(t *testing.T) {
	srv := kurrenttest.Start(t)
	s := open(t, srv.URL())
	ctx := t.Context()
	key := "key-" + uuid.NewString()
	withKey := func(typ string) domain.EventData {
		e := event(typ)
		e.IdempotencyKey = key
		return e
	}
	name := stream()
	first := []domain.EventData{withKey("Created"), withKey("Tagged")}
	if _, err := s.Append(ctx, name, domain.ExpectNoStream, first); err != nil {
		t.Fatal(err)
	}
	// A refused append with the same key must not show up.
	if _, err := s.Append(ctx, name, domain.ExpectNoStream, []domain.EventData{withKey("Again")}); !errors.Is(err, domain.ErrConcurrencyConflict) {
		t.Fatalf("got %v, want a conflict", err)
	}
	if _, err := s.Append(ctx, name, domain.ExpectRevision(1), []domain.EventData{event("Unrelated")}); err != nil {
		t.Fatal(err)
	}
	found, err := s.FindByIdempotencyKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || found[0].ID != first[0].ID || found[1].ID != first[1].ID {
		t.Fatalf("key lookup found %d events, want the first append's two", len(found))
	}
	if none, err := s.FindByIdempotencyKey(ctx, "unused"); err != nil || len(none) != 0 {
		t.Fatalf("unused key: %d events, %v", len(none), err)
	}
}

func TestOpenRefusesBadPrefixes(t *testing.T) {
	for _, prefixes := range [][]string{nil, {""}, {"$"}, {"kyc-"}} {
		if _, err := Open(t.Context(), "esdb://127.0.0.1:1?tls=false", WithStreamPrefixes(prefixes...)); err == nil {
			t.Fatalf("prefixes %q accepted", prefixes)
		}
	}
}
