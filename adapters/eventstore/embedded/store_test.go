package embedded

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
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

// withIndexing overrides when the writer indexes the log tail, and keeps no
// indexed events in memory, so that readers do use stream_index.
func withIndexing(every int, whenIdle bool) Option {
	return func(c *config) { c.indexEvery, c.indexWhenIdle, c.keepIndexed = every, whenIdle, 0 }
}

// The default store indexes whenever it goes idle and keeps the newest events
// in memory, so the suite mostly reads those; these run it again with reads
// served from the unindexed tail only, and from stream_index and the tail
// together.
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

// readOnlyReader appends through a writing store and reads through a
// read-only one on the same file, as a replay command next to a server would.
type readOnlyReader struct {
	*Store
	ro *Store
}

func (s readOnlyReader) ReadStream(ctx context.Context, stream string, dir domain.Direction, from uint64, limit int) ([]domain.RecordedEvent, error) {
	return s.ro.ReadStream(ctx, stream, dir, from, limit)
}

func (s readOnlyReader) ReadAll(ctx context.Context, after domain.Position, limit int) ([]domain.RecordedEvent, error) {
	return s.ro.ReadAll(ctx, after, limit)
}

func (s readOnlyReader) SubscribeAll(ctx context.Context, after domain.Position, handle func(context.Context, domain.RecordedEvent) error) error {
	return s.ro.SubscribeAll(ctx, after, handle)
}

func TestConformanceReadOnlyReader(t *testing.T) {
	storetest.Run(t, func(t *testing.T) domain.EventStore {
		// Every other index run keeps the reader on the tail-scan path.
		s, path := openTemp(t, withIndexing(5, false))
		ro, err := OpenReadOnly(context.Background(), path, WithPollInterval(2*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ro.Close() })
		return readOnlyReader{Store: s, ro: ro}
	})
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
// event at a time to its own stream. Event ids are UUIDv7, as the command
// service makes them; with random (v4) ids every append also writes a random
// page of the id index, which costs about a third of the throughput.
func BenchmarkAppend64(b *testing.B) {
	b.Run("uuidv7", func(b *testing.B) { benchmarkAppend(b, 64, func() uuid.UUID { return uuid.Must(uuid.NewV7()) }) })
	b.Run("uuidv4", func(b *testing.B) { benchmarkAppend(b, 64, uuid.New) })
}

func benchmarkAppend(b *testing.B, writers int, newID func() uuid.UUID) {
	obs := &batchObserver{}
	s, _ := openTemp(b, WithObserver(obs))
	ctx := context.Background()
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
					ID: newID(), Type: "CustomerUpdated", SchemaVersion: 1, OccurredAt: time.Now(),
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
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	obs.mu.Lock()
	if obs.batches > 0 {
		b.ReportMetric(float64(obs.requests)/float64(obs.batches), "reqs/batch")
		b.ReportMetric(float64(obs.totalCommitLatency.Microseconds())/float64(obs.batches), "µs/batch")
	}
	obs.mu.Unlock()
}

// A process that stops without indexing its log tail (a crash) leaves events
// only in the log; readers still find them, and the next writer indexes them
// and carries on from the right heads.
func TestUnindexedTailAfterCrash(t *testing.T) {
	ctx := context.Background()
	s, path := openTemp(t)
	streams := []string{"customer-a", "customer-b", "customer-c"}
	for i := range 12 {
		if _, err := s.Append(ctx, streams[i%3], domain.ExpectAny, []domain.EventData{event("E"), event("F")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Forget the index of everything after position 7, as if the writer
	// had died before indexing it.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"DELETE FROM stream_index WHERE position > 7",
		"UPDATE stream_index_state SET indexed_through = 7",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	check := func(st domain.EventStore, wantPerStream int) {
		t.Helper()
		for _, name := range streams {
			got, err := st.ReadStream(ctx, name, domain.Forwards, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != wantPerStream {
				t.Fatalf("%s has %d events, want %d", name, len(got), wantPerStream)
			}
			if broken := domain.VerifyChain(got); broken != nil {
				t.Fatalf("chain broken: %+v", *broken)
			}
			last, err := st.ReadStream(ctx, name, domain.Backwards, domain.StreamEnd, 1)
			if err != nil || len(last) != 1 || last[0].Revision != uint64(wantPerStream-1) {
				t.Fatalf("last event of %s: %v %v", name, last, err)
			}
		}
	}
	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	check(ro, 8)
	ro.Close()

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check(s, 8)
	for _, name := range streams {
		if _, err := s.Append(ctx, name, domain.ExpectRevision(7), []domain.EventData{event("After")}); err != nil {
			t.Fatal(err)
		}
	}
	check(s, 9)
}

// withSyncWAL replaces how the WAL is made durable.
func withSyncWAL(f func(*os.File) error) Option { return func(c *config) { c.syncWAL = f } }

// After a failed fsync nothing written since the last good one can be
// trusted: the append fails, nobody sees its event, and the store refuses
// further appends.
func TestSyncFailureStopsWrites(t *testing.T) {
	ctx := context.Background()
	var fail atomic.Bool
	s, _ := openTemp(t, withSyncWAL(func(f *os.File) error {
		if fail.Load() {
			return errors.New("injected I/O error")
		}
		return syncData(f)
	}))
	if _, err := s.Append(ctx, "customer-1", domain.ExpectNoStream, []domain.EventData{event("Created")}); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	_, err := s.Append(ctx, "customer-1", domain.ExpectRevision(0), []domain.EventData{event("Lost")})
	if !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("append with a failing fsync: %v, want ErrStoreUnavailable", err)
	}
	got, err := s.ReadAll(ctx, domain.Start, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("readers see %d events, want only the durable one", len(got))
	}
	fail.Store(false)
	if _, err := s.Append(ctx, "customer-2", domain.ExpectNoStream, []domain.EventData{event("Created")}); !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("append after a failed fsync: %v, want ErrStoreUnavailable", err)
	}
}

// BenchmarkReadStream reads a 20-event stream from a store of 20,000 events.
func BenchmarkReadStream(b *testing.B) {
	s, _ := openTemp(b)
	ctx := context.Background()
	const streams, each = 1000, 20
	for i := range streams {
		events := make([]domain.EventData, each)
		for j := range events {
			events[j] = event("E")
		}
		if _, err := s.Append(ctx, fmt.Sprintf("customer-%d", i), domain.ExpectNoStream, events); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		got, err := s.ReadStream(ctx, fmt.Sprintf("customer-%d", i%streams), domain.Forwards, 0, 0)
		if err != nil || len(got) != each {
			b.Fatal(len(got), err)
		}
	}
}

// Close while appends run: each either succeeds, and is then in the file, or
// fails with ErrClosed; none hangs.
func TestCloseDuringAppends(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for {
				_, err := s.Append(ctx, fmt.Sprintf("customer-%d", w), domain.ExpectAny, []domain.EventData{event("E")})
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				ok.Add(1)
			}
		})
	}
	time.Sleep(30 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	all, err := ro.ReadAll(ctx, domain.Start, 0)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(all)) != ok.Load() {
		t.Fatalf("%d appends succeeded, the file holds %d events", ok.Load(), len(all))
	}
}
