package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/eventstore/storetest"
	"github.com/kycengine/kyc/domain"
)

func openTemp(t testing.TB, opts ...Option) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := Open(context.Background(), path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s, path
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) domain.EventStore {
		s, _ := openTemp(t)
		return s
	})
}

// withIndexing overrides when the writer indexes the log tail.
func withIndexing(every int, whenIdle bool) Option {
	return func(c *config) { c.indexEvery, c.indexWhenIdle = every, whenIdle }
}

// The default store indexes whenever it goes idle, so the suite mostly reads
// through stream_index; these run it again with reads served from the tail.
func TestConformanceTailOnly(t *testing.T) {
	storetest.Run(t, func(t *testing.T) domain.EventStore {
		s, _ := openTemp(t, withIndexing(math.MaxInt, false))
		return s
	})
}

func TestConformancePartlyIndexed(t *testing.T) {
	storetest.Run(t, func(t *testing.T) domain.EventStore {
		s, _ := openTemp(t, withIndexing(3, false))
		return s
	})
}

func event(typ string) domain.EventData {
	return domain.EventData{
		ID:         uuid.New(),
		Type:       typ,
		OccurredAt: time.Now(),
		Actor:      domain.Actor{Kind: domain.ActorSystem, ID: "test"},
		Data:       json.RawMessage(`{}`),
	}
}

func TestSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	first := event("Created")
	first.IdempotencyKey = "cmd-1"
	if _, err := s.Append(ctx, "customer-1", domain.ExpectNoStream, []domain.EventData{first, event("Updated")}); err != nil {
		t.Fatal(err)
	}
	before, err := s.ReadAll(ctx, domain.Start, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Append(ctx, "customer-1", domain.ExpectAny, []domain.EventData{event("Late")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	after, err := s.ReadAll(ctx, domain.Start, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 2 || after[0].ID != before[0].ID || after[1].Hash != before[1].Hash {
		t.Fatalf("after reopen the log is %+v, was %+v", after, before)
	}
	// The reopened writer starts with an empty head cache and must find the
	// head and the chain in the file.
	res, err := s.Append(ctx, "customer-1", domain.ExpectRevision(1), []domain.EventData{event("Again")})
	if err != nil {
		t.Fatal(err)
	}
	if res.LastRevision != 2 || !before[1].Position.Less(res.Position) {
		t.Fatalf("append after reopen: %+v", res)
	}
	stream, err := s.ReadStream(ctx, "customer-1", domain.Forwards, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if broken := domain.VerifyChain(stream); broken != nil {
		t.Fatalf("chain broken after reopen: %+v", *broken)
	}
	found, err := s.FindByIdempotencyKey(ctx, "cmd-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].ID != first.ID {
		t.Fatalf("FindByIdempotencyKey returned %v", found)
	}
}

func TestLockRefusesSecondWriter(t *testing.T) {
	s, path := openTemp(t)
	_, err := Open(context.Background(), path)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if want := path; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not name the file %s", err, want)
	}
	// A reader needs no lock.
	ro, err := OpenReadOnly(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	ro.Close()
	// Once the writer is gone the file can be opened again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open after the first writer closed: %v", err)
	}
	s2.Close()
}

type batchObserver struct {
	mu                 sync.Mutex
	batches, maxReqs   int
	requests, events   int
	totalCommitLatency time.Duration
}

func (o *batchObserver) BatchCommitted(requests, events int, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.batches++
	o.requests += requests
	o.events += events
	o.maxReqs = max(o.maxReqs, requests)
	o.totalCommitLatency += d
}

func TestConcurrentAppendsAreBatched(t *testing.T) {
	obs := &batchObserver{}
	s, _ := openTemp(t, WithObserver(obs))
	ctx := context.Background()
	const writers, each = 64, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("customer-%d", w)
			exp := domain.ExpectNoStream
			for i := range each {
				if _, err := s.Append(ctx, stream, exp, []domain.EventData{event("E")}); err != nil {
					t.Error(err)
					return
				}
				exp = domain.ExpectRevision(uint64(i))
			}
		})
	}
	wg.Wait()
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.maxReqs <= 1 {
		t.Fatalf("largest batch answered %d requests; 64 concurrent writers were not batched", obs.maxReqs)
	}
	t.Logf("%d batches, %d requests, %d events, largest batch %d requests", obs.batches, obs.requests, obs.events, obs.maxReqs)
}

func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	if _, err := s.Append(ctx, "customer-1", domain.ExpectNoStream, []domain.EventData{event("Created")}); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(ctx, path, WithPollInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.Append(ctx, "customer-1", domain.ExpectAny, []domain.EventData{event("X")}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("append on a read-only store: %v, want ErrReadOnly", err)
	}
	got, err := ro.ReadStream(ctx, "customer-1", domain.Forwards, 0, 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("read-only ReadStream: %v %v", got, err)
	}
	// A read-only subscription sees what the writing store commits later.
	subCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	var seen atomic.Int32
	go func() {
		done <- ro.SubscribeAll(subCtx, domain.Start, func(context.Context, domain.RecordedEvent) error {
			if seen.Add(1) == 3 {
				return errStopTest
			}
			return nil
		})
	}()
	for i := range 2 {
		if _, err := s.Append(ctx, "customer-1", domain.ExpectRevision(uint64(i)), []domain.EventData{event("Later")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; !errors.Is(err, errStopTest) {
		t.Fatalf("read-only subscription: %v after %d events", err, seen.Load())
	}

	if _, err := OpenReadOnly(ctx, filepath.Join(t.TempDir(), "missing.db")); err == nil {
		t.Fatal("OpenReadOnly created a missing file")
	}
}

var errStopTest = errors.New("stop")

func TestOpenValidatesArguments(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for name, path := range map[string]string{
		"empty":       "",
		"directory":   dir,
		"missing dir": filepath.Join(dir, "nope", "events.db"),
	} {
		if s, err := Open(ctx, path); err == nil {
			s.Close()
			t.Errorf("%s: Open(%q) succeeded", name, path)
		}
	}
	s, _ := openTemp(t)
	for name, events := range map[string][]domain.EventData{
		"none":      nil,
		"no id":     {{Type: "T", OccurredAt: time.Now()}},
		"no type":   {{ID: uuid.New(), OccurredAt: time.Now()}},
		"zero time": {{ID: uuid.New(), Type: "T"}},
	} {
		if _, err := s.Append(ctx, "customer-1", domain.ExpectAny, events); err == nil {
			t.Errorf("append %s succeeded", name)
		}
	}
	if _, err := s.Append(ctx, "", domain.ExpectAny, []domain.EventData{event("T")}); err == nil {
		t.Error("append to an empty stream name succeeded")
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- s.SubscribeAll(context.Background(), domain.Start, func(context.Context, domain.RecordedEvent) error { return nil })
	}()
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("subscription ended with %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("subscription outlived Close")
	}
}

// BenchmarkAppend64 is the durable path: 64 goroutines, each appending one
// event at a time to its own stream.
func BenchmarkAppend64(b *testing.B) {
	obs := &batchObserver{}
	s, _ := openTemp(b, WithObserver(obs))
	ctx := context.Background()
	const writers = 64
	var next atomic.Int64
	data := json.RawMessage(`{"field":"value","n":12345,"ok":true}`)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			stream := fmt.Sprintf("customer-%d-%s", w, uuid.NewString())
			for rev := uint64(0); next.Add(1) <= int64(b.N); rev++ {
				e := domain.EventData{
					ID: uuid.Must(uuid.NewV7()), Type: "CustomerUpdated", SchemaVersion: 1, OccurredAt: time.Now(),
					Actor: domain.Actor{Kind: domain.ActorAPIKey, ID: "key", Company: "acme"},
					Data:  data,
				}
				exp := domain.ExpectRevision(rev - 1)
				if rev == 0 {
					exp = domain.ExpectNoStream
				}
				if _, err := s.Append(ctx, stream, exp, []domain.EventData{e}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	s.Close()
	if ExpCommits > 0 && ExpSyncs > 0 {
		fmt.Printf("commits %d avg %v reqs/commit %.1f; syncs %d avg %v; writer waited for sync %v total (%v)\n", ExpCommits, ExpCommit/time.Duration(ExpCommits), float64(ExpReqs)/float64(ExpCommits), ExpSyncs, ExpSync/time.Duration(ExpSyncs), ExpWaitSync, elapsed)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	obs.mu.Lock()
	if obs.batches > 0 {
		b.ReportMetric(float64(obs.requests)/float64(obs.batches), "reqs/batch")
		b.ReportMetric(float64(obs.totalCommitLatency.Microseconds())/float64(obs.batches), "µs/batch")
	}
	obs.mu.Unlock()
}
