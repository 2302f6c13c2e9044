package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/kycengine/kyc/adapters/eventstore/storetest"
	"github.com/kycengine/kyc/adapters/pgtest"
	"github.com/kycengine/kyc/domain"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t testing.TB, url string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(context.Background(), url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func event(typ string) domain.EventData {
	return domain.EventData{
		ID:         uuid.Must(uuid.NewV7()),
		Type:       typ,
		OccurredAt: time.Now(),
		Actor:      domain.Actor{Kind: domain.ActorSystem, ID: "test"},
		Data:       json.RawMessage(`{}`),
	}
}

func events(typ string, n int) []domain.EventData {
	out := make([]domain.EventData, n)
	for i := range out {
		out[i] = event(typ)
	}
	return out
}

func mustAppend(t *testing.T, ctx context.Context, s domain.EventStore, stream string, exp domain.ExpectedRevision, evs ...domain.EventData) domain.AppendResult {
	t.Helper()
	res, err := s.Append(ctx, stream, exp, evs)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return res
}

func readAll(t *testing.T, ctx context.Context, s domain.EventStore) []domain.RecordedEvent {
	t.Helper()
	all, err := s.ReadAll(ctx, domain.Start, 0)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) domain.EventStore {
		return open(t, pgtest.NewDatabase(t))
	})
}

// Every batch goes through an explicit transaction when a test hook is set;
// the suite holds that path to the same rules.
func TestConformanceExplicitTransactions(t *testing.T) {
	storetest.Run(t, func(t *testing.T) domain.EventStore {
		return open(t, pgtest.NewDatabase(t), withBeforeCommit(func(context.Context, []string) {}))
	})
}

// twoProcesses spreads calls over two stores on one database, as two kyc
// processes would: each knows only the stream heads it saw itself, and one
// is woken by the other's commits only through NOTIFY.
type twoProcesses struct {
	a, b *Store
	n    atomic.Uint64
}

func (p *twoProcesses) pick() *Store {
	if p.n.Add(1)%2 == 0 {
		return p.a
	}
	return p.b
}

func (p *twoProcesses) Append(ctx context.Context, stream string, exp domain.ExpectedRevision, evs []domain.EventData) (domain.AppendResult, error) {
	return p.pick().Append(ctx, stream, exp, evs)
}

func (p *twoProcesses) ReadStream(ctx context.Context, stream string, dir domain.Direction, from uint64, limit int) ([]domain.RecordedEvent, error) {
	return p.pick().ReadStream(ctx, stream, dir, from, limit)
}

func (p *twoProcesses) ReadAll(ctx context.Context, after domain.Position, limit int) ([]domain.RecordedEvent, error) {
	return p.pick().ReadAll(ctx, after, limit)
}

func (p *twoProcesses) SubscribeAll(ctx context.Context, after domain.Position, handle func(context.Context, domain.RecordedEvent) error) error {
	return p.pick().SubscribeAll(ctx, after, handle)
}

func TestConformanceTwoProcesses(t *testing.T) {
	storetest.Run(t, func(t *testing.T) domain.EventStore {
		url := pgtest.NewDatabase(t)
		// An hour: the subscription of one store must be woken by NOTIFY
		// when the other appends, not by polling.
		return &twoProcesses{a: open(t, url, WithPollInterval(time.Hour)), b: open(t, url, WithPollInterval(time.Hour))}
	})
}

// collector gathers what a subscription delivers.
type collector struct {
	mu     sync.Mutex
	events []domain.RecordedEvent
	done   chan error
	cancel context.CancelFunc
}

func subscribe(ctx context.Context, s domain.EventStore, after domain.Position) *collector {
	ctx, cancel := context.WithCancel(ctx)
	c := &collector{done: make(chan error, 1), cancel: cancel}
	go func() {
		c.done <- s.SubscribeAll(ctx, after, func(_ context.Context, e domain.RecordedEvent) error {
			c.mu.Lock()
			c.events = append(c.events, e)
			c.mu.Unlock()
			return nil
		})
	}()
	return c
}

func (c *collector) snapshot() []domain.RecordedEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.events)
}

func (c *collector) waitFor(t *testing.T, n int, timeout time.Duration) []domain.RecordedEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := c.snapshot()
		if len(got) >= n {
			return got
		}
		select {
		case err := <-c.done:
			t.Fatalf("subscription ended after %d of %d events: %v", len(got), n, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscription delivered %d of %d events in %s", len(got), n, timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// checkSameLog holds what a subscription delivered to the log as ReadAll
// returns it once every writer is done: every event once, in that order.
func checkSameLog(t *testing.T, name string, delivered, log []domain.RecordedEvent) {
	t.Helper()
	seen := map[uuid.UUID]bool{}
	for i, e := range delivered {
		if seen[e.ID] {
			t.Fatalf("%s: event %s delivered twice", name, e.ID)
		}
		seen[e.ID] = true
		if i > 0 && !delivered[i-1].Position.Less(e.Position) {
			t.Fatalf("%s: delivered %s after %s", name, e.Position, delivered[i-1].Position)
		}
	}
	if len(delivered) != len(log) {
		t.Fatalf("%s: delivered %d events, the log holds %d", name, len(delivered), len(log))
	}
	for i := range log {
		if delivered[i].ID != log[i].ID || delivered[i].Position != log[i].Position {
			t.Fatalf("%s: event %d delivered as %s at %s, the log has %s at %s", name, i,
				delivered[i].ID, delivered[i].Position, log[i].ID, log[i].Position)
		}
	}
}

// TestLateCommitIsNotSkipped holds one append's transaction open after it
// has written, while later appends commit. Those are committed, so a reader
// following a plain sequence would deliver them and pass the held one by
// for good; here they stay behind the horizon until it commits, and then
// the subscription delivers all of them once, in the log's order.
func TestLateCommitIsNotSkipped(t *testing.T) {
	ctx := testCtx(t)
	url := pgtest.NewDatabase(t)
	const slow = "customer-slow"
	paused, release := make(chan struct{}), make(chan struct{})
	var pauseOnce, releaseOnce sync.Once
	hook := func(_ context.Context, streams []string) {
		if slices.Contains(streams, slow) {
			pauseOnce.Do(func() { close(paused) })
			<-release
		}
	}
	s := open(t, url, withBeforeCommit(hook), withCommitters(4))
	// Released before the store closes, whatever happens below.
	t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) })

	sub := subscribe(ctx, s, domain.Start)
	defer sub.cancel()
	mustAppend(t, ctx, s, "customer-first", domain.ExpectNoStream, event("First"))
	sub.waitFor(t, 1, 10*time.Second)

	slowDone := make(chan error, 1)
	slowEvent := event("Slow")
	go func() {
		_, err := s.Append(ctx, slow, domain.ExpectNoStream, []domain.EventData{slowEvent})
		slowDone <- err
	}()
	select {
	case <-paused:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow append never reached its commit")
	}

	const later = 20
	for i := range later {
		mustAppend(t, ctx, s, fmt.Sprintf("customer-%d", i), domain.ExpectNoStream, event("Later"))
	}
	// They are committed: a plain query sees them.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var committed int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM kyc_events").Scan(&committed); err != nil {
		t.Fatal(err)
	}
	if committed != 1+later {
		t.Fatalf("%d events committed while the slow append waits, want %d", committed, 1+later)
	}
	// But nothing behind the slow append is read or delivered.
	time.Sleep(300 * time.Millisecond)
	if got := sub.snapshot(); len(got) != 1 {
		t.Fatalf("the subscription delivered %d events while an older transaction was open, want 1", len(got))
	}
	if got := readAll(t, ctx, s); len(got) != 1 {
		t.Fatalf("ReadAll returned %d events while an older transaction was open, want 1", len(got))
	}
	if n, err := s.CountAfter(ctx, domain.Start); err != nil || n != 1 {
		t.Fatalf("CountAfter while an older transaction was open: %d, %v; want 1", n, err)
	}

	releaseOnce.Do(func() { close(release) })
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}
	delivered := sub.waitFor(t, 2+later, 10*time.Second)
	log := readAll(t, ctx, s)
	checkSameLog(t, "subscription", delivered, log)
	if delivered[1].ID != slowEvent.ID {
		t.Fatalf("event 1 delivered is %s (%s), want the slow one, whose transaction began first", delivered[1].Type, delivered[1].Position)
	}
}

// TestSubscriptionsUnderRandomCommitDelays: two processes append while
// every batch waits a random moment before it commits, so transactions
// commit out of the order of their ids all the time; subscribers on both
// deliver exactly the final log.
func TestSubscriptionsUnderRandomCommitDelays(t *testing.T) {
	ctx := testCtx(t)
	url := pgtest.NewDatabase(t)
	jitter := func(context.Context, []string) {
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
	}
	a := open(t, url, withBeforeCommit(jitter), withCommitters(3))
	b := open(t, url, withBeforeCommit(jitter), withCommitters(3))
	subs := []*collector{subscribe(ctx, a, domain.Start), subscribe(ctx, b, domain.Start), subscribe(ctx, a, domain.Start)}
	for _, sub := range subs {
		defer sub.cancel()
	}

	const writers, appendsEach, streams = 12, 40, 10
	var wg sync.WaitGroup
	var total atomic.Int64
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			s := a
			if w%2 == 1 {
				s = b
			}
			for i := range appendsEach {
				n := 1 + (w+i)%3
				if _, err := s.Append(ctx, fmt.Sprintf("customer-%d", (w+i)%streams), domain.ExpectAny, events("Jitter", n)); err != nil {
					errs <- err
					return
				}
				total.Add(int64(n))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	log := readAll(t, ctx, a)
	if len(log) != int(total.Load()) {
		t.Fatalf("the log holds %d events, the writers appended %d", len(log), total.Load())
	}
	for i, sub := range subs {
		checkSameLog(t, fmt.Sprintf("subscription %d", i), sub.waitFor(t, len(log), 20*time.Second), log)
	}
	for i := range streams {
		stream, err := a.ReadStream(ctx, fmt.Sprintf("customer-%d", i), domain.Forwards, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if broken := domain.VerifyChain(stream); broken != nil {
			t.Fatalf("chain broken: %+v", *broken)
		}
	}
}

// TestConcurrentAppendsAcrossProcesses races two stores on the same streams
// with exact expected revisions: per round exactly one append wins, and
// every loser sees a conflict naming the winner's revision.
func TestConcurrentAppendsAcrossProcesses(t *testing.T) {
	ctx := testCtx(t)
	url := pgtest.NewDatabase(t)
	stores := []*Store{open(t, url), open(t, url)}
	const streams, rounds, racers = 4, 10, 6
	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for st := range streams {
		wg.Go(func() {
			stream := fmt.Sprintf("customer-%d", st)
			head := int64(-1)
			for r := range rounds {
				exp := domain.ExpectNoStream
				if head >= 0 {
					exp = domain.ExpectRevision(uint64(head))
				}
				results := make([]domain.AppendResult, racers)
				failures := make([]error, racers)
				var race sync.WaitGroup
				for i := range racers {
					race.Go(func() {
						results[i], failures[i] = stores[i%2].Append(ctx, stream, exp, events("Race", 1+i%2))
					})
				}
				race.Wait()
				winner := -1
				for i, err := range failures {
					if err == nil {
						if winner >= 0 {
							errs <- fmt.Errorf("%s round %d: appends %d and %d both won", stream, r, winner, i)
							return
						}
						winner = i
					}
				}
				if winner < 0 {
					errs <- fmt.Errorf("%s round %d: nobody won: %v", stream, r, failures[0])
					return
				}
				head = int64(results[winner].LastRevision)
				for i, err := range failures {
					var ce *domain.ConflictError
					if i != winner && (!errors.As(err, &ce) || !ce.ActualExists || ce.Actual != uint64(head)) {
						errs <- fmt.Errorf("%s round %d: loser %d got %v, want a conflict at %d", stream, r, i, err, head)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for st := range streams {
		got, err := stores[st%2].ReadStream(ctx, fmt.Sprintf("customer-%d", st), domain.Forwards, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if broken := domain.VerifyChain(got); broken != nil {
			t.Fatalf("chain broken: %+v", *broken)
		}
	}
}

// TestDuplicateDoesNotFailItsBatch: appends refused for a duplicate id or a
// conflict travel in the same batches as good ones, which must all land.
func TestDuplicateDoesNotFailItsBatch(t *testing.T) {
	ctx := testCtx(t)
	s := open(t, pgtest.NewDatabase(t), withCommitters(1))
	stored := event("Stored")
	mustAppend(t, ctx, s, "customer-stored", domain.ExpectNoStream, stored)
	var wg sync.WaitGroup
	var good, dup, conflict atomic.Int64
	for i := range 60 {
		wg.Go(func() {
			var err error
			switch i % 3 {
			case 0:
				_, err = s.Append(ctx, fmt.Sprintf("customer-%d", i), domain.ExpectNoStream, []domain.EventData{event("New"), stored})
				if errors.Is(err, domain.ErrDuplicateEventID) {
					dup.Add(1)
					return
				}
			case 1:
				_, err = s.Append(ctx, "customer-stored", domain.ExpectNoStream, []domain.EventData{event("Refused")})
				if errors.Is(err, domain.ErrConcurrencyConflict) {
					conflict.Add(1)
					return
				}
			default:
				if _, err = s.Append(ctx, fmt.Sprintf("customer-%d", i), domain.ExpectNoStream, events("Good", 2)); err == nil {
					good.Add(1)
					return
				}
			}
			t.Errorf("append %d: %v", i, err)
		})
	}
	wg.Wait()
	if good.Load() != 20 || dup.Load() != 20 || conflict.Load() != 20 {
		t.Fatalf("good %d, duplicates %d, conflicts %d; want 20 each", good.Load(), dup.Load(), conflict.Load())
	}
	if n := len(readAll(t, ctx, s)); n != 1+40 {
		t.Fatalf("the log holds %d events, want 41", n)
	}
}

func TestBatchPacingTarget(t *testing.T) {
	for _, c := range []struct {
		name                 string
		inFlight, last, size int
		want                 int
	}{
		{"nothing in flight", 0, 20, 3, 0},
		{"the batch before carried one append", 1, 1, 1, 0},
		{"no batch before", 1, 0, 1, 0},
		{"as large as the batch before", 1, 20, 20, 0},
		{"larger than the batch before", 2, 20, 25, 0},
		{"smaller than the batch in flight", 1, 20, 3, 20},
		{"two appends behind two", 1, 2, 1, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			var p batchPacing
			p.inFlight.Store(int32(c.inFlight))
			p.lastSize.Store(int32(c.last))
			if got := p.target(c.size); got != c.want {
				t.Fatalf("target(%d) with %d in flight after a batch of %d = %d, want %d", c.size, c.inFlight, c.last, got, c.want)
			}
		})
	}
}

// batchSizes records the appends each batch carried.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (b *batchSizes) BatchCommitted(requests, _ int, _ time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sizes = append(b.sizes, requests)
}

// waitFor returns the sizes reported once there are n of them: a batch is
// reported after its appends are answered.
func (b *batchSizes) waitFor(t *testing.T, n int) []int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		b.mu.Lock()
		got := slices.Clone(b.sizes)
		b.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
	}
}

// TestBatchWaitsToGrowWhileAnotherIsInFlight: with another batch of two in
// flight, a lone append waits for a second one and both go in one batch;
// with nothing in flight, or after a batch of one, an append goes at once.
// The wait has no bound here, so an append that waited when it should not
// would hang until the test's deadline.
func TestBatchWaitsToGrowWhileAnotherIsInFlight(t *testing.T) {
	ctx := testCtx(t)
	var sizes batchSizes
	// One committer, so that the batch in flight is the test's pretence and
	// every append meets the same committer.
	s := open(t, pgtest.NewDatabase(t), withCommitters(1), withMaxLinger(time.Hour), WithObserver(&sizes))
	s.pacing.inFlight.Store(1)
	s.pacing.lastSize.Store(2)

	first := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, "customer-1", domain.ExpectNoStream, []domain.EventData{event("First")})
		first <- err
	}()
	select {
	case err := <-first:
		t.Fatalf("the append did not wait for a second one (err %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	mustAppend(t, ctx, s, "customer-2", domain.ExpectNoStream, event("Second"))
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got := sizes.waitFor(t, 1); !slices.Equal(got, []int{2}) {
		t.Fatalf("batches carried %v appends, want one batch of 2", got)
	}

	// The pretended batch ends; the last batch carried two appends. Adding,
	// not storing: the committer may not have counted its own batch's end
	// yet, and does before it takes the next append.
	s.pacing.inFlight.Add(-1)
	soon, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	mustAppend(t, soon, s, "customer-3", domain.ExpectNoStream, event("Alone"))
	// Another batch in flight, after one of one append.
	s.pacing.inFlight.Add(1)
	s.pacing.lastSize.Store(1)
	mustAppend(t, soon, s, "customer-4", domain.ExpectNoStream, event("AfterOne"))
	if got := sizes.waitFor(t, 3); !slices.Equal(got, []int{2, 1, 1}) {
		t.Fatalf("batches carried %v appends, want 2, 1, 1", got)
	}
}

func TestCountAfterMatchesReadAll(t *testing.T) {
	ctx := testCtx(t)
	s := open(t, pgtest.NewDatabase(t))
	count := func(after domain.Position) int64 {
		t.Helper()
		n, err := s.CountAfter(ctx, after)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(domain.Start); n != 0 {
		t.Fatalf("empty store: %d", n)
	}
	for range 5 {
		mustAppend(t, ctx, s, "customer-a", domain.ExpectAny, event("A"), event("B"))
	}
	if _, err := s.Append(ctx, "customer-a", domain.ExpectNoStream, []domain.EventData{event("Refused")}); err == nil {
		t.Fatal("append to an existing stream with ExpectNoStream succeeded")
	}
	mustAppend(t, ctx, s, "customer-b", domain.ExpectNoStream, event("C"))
	all := readAll(t, ctx, s)
	if n := count(domain.Start); n != int64(len(all)) {
		t.Fatalf("count from the start %d, ReadAll has %d", n, len(all))
	}
	for i, e := range all {
		if n := count(e.Position); n != int64(len(all)-i-1) {
			t.Fatalf("count after %s: %d, want %d", e.Position, n, len(all)-i-1)
		}
	}
}

func TestFindByIdempotencyKey(t *testing.T) {
	ctx := testCtx(t)
	s := open(t, pgtest.NewDatabase(t))
	first, second := event("Created"), event("Updated")
	first.IdempotencyKey, second.IdempotencyKey = "cmd-1", "cmd-1"
	mustAppend(t, ctx, s, "customer-1", domain.ExpectNoStream, first, second)
	mustAppend(t, ctx, s, "customer-1", domain.ExpectRevision(1), event("Other"))
	found, err := s.FindByIdempotencyKey(ctx, "cmd-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || found[0].ID != first.ID || found[1].ID != second.ID || found[0].IdempotencyKey != "cmd-1" {
		t.Fatalf("FindByIdempotencyKey returned %+v", found)
	}
	if found, err := s.FindByIdempotencyKey(ctx, "cmd-2"); err != nil || len(found) != 0 {
		t.Fatalf("unknown key: %v, %v", found, err)
	}
}

// TestConcurrentOpen opens one new database from many goroutines at once:
// one of them migrates, the others wait for the lock and find the schema
// current.
func TestConcurrentOpen(t *testing.T) {
	ctx := testCtx(t)
	url := pgtest.NewDatabase(t)
	const n = 8
	var wg sync.WaitGroup
	stores := make([]*Store, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			if i == n-1 {
				errs[i] = Migrate(ctx, url)
				return
			}
			stores[i], errs[i] = Open(ctx, url)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
	}
	for i, s := range stores[:n-1] {
		mustAppend(t, ctx, s, fmt.Sprintf("customer-%d", i), domain.ExpectNoStream, event("Opened"))
	}
	for _, s := range stores[:n-1] {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var applied int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+versionTable+" WHERE version_id = 1 AND is_applied").Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != 1 {
		t.Fatalf("migration 1 recorded %d times, want once", applied)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := testCtx(t)
	url := pgtest.NewDatabase(t)
	if err := Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "INSERT INTO "+versionTable+" (version_id, is_applied) VALUES (999, true)"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, url); !errors.Is(err, ErrSchemaVersion) {
		t.Fatalf("Open of a database a newer binary migrated: %v, want ErrSchemaVersion", err)
	}
}

func TestOpenValidatesURL(t *testing.T) {
	for _, url := range []string{"", "  ", "postgres://user@host:notaport/db", "mysql://x"} {
		if _, err := Open(context.Background(), url); err == nil || errors.Is(err, domain.ErrStoreUnavailable) {
			t.Errorf("Open(%q): %v, want a URL error", url, err)
		}
	}
}

func TestUnreachableServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/kyc?sslmode=disable&connect_timeout=5", port)
	if _, err := Open(context.Background(), url); !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("Open of %s: %v, want ErrStoreUnavailable", url, err)
	}
	if err := Migrate(context.Background(), url); !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("Migrate of %s: %v, want ErrStoreUnavailable", url, err)
	}
}

// TestServerGoesAway stops the server under an open store: every call then
// fails with ErrStoreUnavailable.
func TestServerGoesAway(t *testing.T) {
	ctx := testCtx(t)
	srv, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		pgtest.Unavailable(t, err)
	}
	stopped := false
	defer func() {
		if !stopped {
			srv.Stop()
		}
	}()
	url, err := srv.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, url)
	mustAppend(t, ctx, s, "customer-1", domain.ExpectNoStream, event("Created"))
	sub := subscribe(ctx, s, domain.Start)
	defer sub.cancel()
	sub.waitFor(t, 1, 10*time.Second)

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if _, err := s.Append(ctx, "customer-1", domain.ExpectRevision(0), []domain.EventData{event("Lost")}); !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("Append: %v, want ErrStoreUnavailable", err)
	}
	if _, err := s.ReadStream(ctx, "customer-1", domain.Forwards, 0, 0); !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("ReadStream: %v, want ErrStoreUnavailable", err)
	}
	if _, err := s.ReadAll(ctx, domain.Start, 10); !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("ReadAll: %v, want ErrStoreUnavailable", err)
	}
	if _, err := s.CountAfter(ctx, domain.Start); !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("CountAfter: %v, want ErrStoreUnavailable", err)
	}
	err = s.SubscribeAll(ctx, domain.Start, func(context.Context, domain.RecordedEvent) error { return nil })
	if !errors.Is(err, domain.ErrStoreUnavailable) {
		t.Fatalf("SubscribeAll: %v, want ErrStoreUnavailable", err)
	}
}

// TestListenerReconnects kills the store's LISTEN connection: it comes back
// by itself, and appends from another process wake the subscription again
// without waiting for a poll.
func TestListenerReconnects(t *testing.T) {
	ctx := testCtx(t)
	url := pgtest.NewDatabase(t)
	s := open(t, url, WithPollInterval(time.Hour))
	other := open(t, url)
	sub := subscribe(ctx, s, domain.Start)
	defer sub.cancel()
	mustAppend(t, ctx, other, "customer-1", domain.ExpectNoStream, event("Before"))
	sub.waitFor(t, 1, 10*time.Second)

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	listener := func() int {
		t.Helper()
		var pid int
		err := conn.QueryRow(ctx, `SELECT coalesce(max(pid), 0) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'kyc-events-listener'`).Scan(&pid)
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	// The subscription may have read the first event before the listener
	// connected (CI saw it missing once): wait for it.
	old := listener()
	for deadline := time.Now().Add(10 * time.Second); old == 0; old = listener() {
		if time.Now().After(deadline) {
			t.Fatal("no listening connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1)", old); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for pid := listener(); pid == 0 || pid == old; pid = listener() {
		if time.Now().After(deadline) {
			t.Fatal("the listening connection did not come back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mustAppend(t, ctx, other, "customer-1", domain.ExpectRevision(0), event("After"))
	sub.waitFor(t, 2, 5*time.Second)
}

func TestCloseEndsSubscriptionsAndAppends(t *testing.T) {
	ctx := testCtx(t)
	s, err := Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	sub := subscribe(ctx, s, domain.Start)
	mustAppend(t, ctx, s, "customer-1", domain.ExpectNoStream, event("Created"))
	sub.waitFor(t, 1, 10*time.Second)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	select {
	case err := <-sub.done:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("subscription ended with %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("subscription did not end when the store closed")
	}
	if _, err := s.Append(ctx, "customer-1", domain.ExpectAny, []domain.EventData{event("Late")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}
	if _, err := s.ReadAll(ctx, domain.Start, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v, want ErrClosed", err)
	}
}

// TestHeadsFromAnotherProcess: a store whose cached head is stale (another
// process appended since) still appends with the right chain.
func TestHeadsFromAnotherProcess(t *testing.T) {
	ctx := testCtx(t)
	url := pgtest.NewDatabase(t)
	a, b := open(t, url), open(t, url)
	mustAppend(t, ctx, a, "customer-1", domain.ExpectNoStream, event("A0"))
	mustAppend(t, ctx, b, "customer-1", domain.ExpectRevision(0), event("B1"), event("B2"))
	// a still believes the head is 0.
	res := mustAppend(t, ctx, a, "customer-1", domain.ExpectAny, event("A3"))
	if res.LastRevision != 3 {
		t.Fatalf("append after another process's: revision %d, want 3", res.LastRevision)
	}
	if _, err := a.Append(ctx, "customer-1", domain.ExpectRevision(0), []domain.EventData{event("Stale")}); !errors.Is(err, domain.ErrConcurrencyConflict) {
		t.Fatalf("stale expectation: %v, want a conflict", err)
	}
	got, err := b.ReadStream(ctx, "customer-1", domain.Forwards, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || domain.VerifyChain(got) != nil {
		t.Fatalf("stream %+v", got)
	}
}

// TestStaleHeadHashIsRefused: a process whose cached head has the right
// revision but another event's hash (its database was restored from a
// backup and written to since) must not chain its next event to that hash;
// the batch compares the hash too, answers with the real head, and the
// append is hashed again on it.
func TestStaleHeadHashIsRefused(t *testing.T) {
	ctx := testCtx(t)
	url := pgtest.NewDatabase(t)
	a, b := open(t, url), open(t, url)
	mustAppend(t, ctx, a, "customer-1", domain.ExpectNoStream, event("Lost"))
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The restore: the stream as it was before a's append.
	if _, err := conn.Exec(ctx, `DELETE FROM kyc_events WHERE stream = 'customer-1'; DELETE FROM kyc_streams WHERE name = 'customer-1'`); err != nil {
		t.Fatal(err)
	}
	first := mustAppend(t, ctx, b, "customer-1", domain.ExpectNoStream, event("Kept"))
	next := mustAppend(t, ctx, a, "customer-1", domain.ExpectRevision(0), event("Next"))
	if next.LastRevision != 1 || next.Recorded[0].PrevHash != first.Recorded[0].Hash {
		t.Fatalf("appended at revision %d after hash %.12s, want revision 1 after %.12s (the event now at revision 0)",
			next.LastRevision, next.Recorded[0].PrevHash, first.Recorded[0].Hash)
	}
	got, err := b.ReadStream(ctx, "customer-1", domain.Forwards, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if broken := domain.VerifyChain(got); len(got) != 2 || broken != nil {
		t.Fatalf("stream of %d events, chain: %+v", len(got), broken)
	}
}

// TestPlansUseIndexes holds every query of the store to the plan its
// connections are set up for: the generic plan, on a log without
// statistics, reads no table from end to end.
func TestPlansUseIndexes(t *testing.T) {
	ctx := testCtx(t)
	s := open(t, pgtest.NewDatabase(t))
	for i := range 50 {
		mustAppend(t, ctx, s, fmt.Sprintf("customer-%d", i), domain.ExpectNoStream, events("E", 3)...)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	queries := map[string]string{
		"append": appendSQL, "lookup": lookupSQL, "readAll": readAllSQL, "heldBack": heldBackSQL,
		"forwards": forwardsSQL, "backwards": backwardsSQL, "exists": existsSQL,
		"byIdemKey": byIdemKeySQL, "count": countSQL, "tail": tailSQL,
	}
	// Readers set the horizon first (horizonSQL); a session setting stands in.
	if _, err := conn.Exec(ctx, "SELECT set_config('kyc.horizon', '1000', false)"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(context.Background(), "RESET kyc.horizon")
	for name, query := range queries {
		if _, err := conn.Exec(ctx, "PREPARE plan_check AS "+query); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var params int
		if err := conn.QueryRow(ctx, "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = 'plan_check'").Scan(&params); err != nil {
			t.Fatal(err)
		}
		nulls := make([]string, params)
		for i := range nulls {
			nulls[i] = "NULL"
		}
		args := ""
		if params > 0 {
			args = "(" + strings.Join(nulls, ", ") + ")"
		}
		rows, err := conn.Query(ctx, "EXPLAIN EXECUTE plan_check"+args)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		text := strings.Join(plan, "\n")
		for _, bad := range []string{"Seq Scan on kyc", "Hash Join", "Merge Join"} {
			if strings.Contains(text, bad) {
				t.Errorf("%s: plan has %s:\n%s", name, bad, text)
			}
		}
		if _, err := conn.Exec(ctx, "DEALLOCATE plan_check"); err != nil {
			t.Fatal(err)
		}
	}
}

// followedWithOpenTransaction opens a store that polls once an hour, has a
// subscription deliver its first event, and opens a transaction on a
// connection of its own, which the test makes hold the horizon or not.
func followedWithOpenTransaction(t *testing.T, ctx context.Context) (*Store, *collector, pgx.Tx) {
	t.Helper()
	url := pgtest.NewDatabase(t)
	s := open(t, url, WithPollInterval(time.Hour))
	sub := subscribe(ctx, s, domain.Start)
	t.Cleanup(sub.cancel)
	mustAppend(t, ctx, s, "customer-0", domain.ExpectNoStream, event("Before"))
	sub.waitFor(t, 1, 10*time.Second)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	return s, sub, tx
}

// TestOtherTransactionsDoNotHoldTheHorizon: a long transaction that is no
// append (another application on the server, a read-model commit) does not
// hold subscribers back: only appends count for the horizon.
func TestOtherTransactionsDoNotHoldTheHorizon(t *testing.T) {
	ctx := testCtx(t)
	s, sub, tx := followedWithOpenTransaction(t, ctx)
	if _, err := tx.Exec(ctx, "CREATE TEMP TABLE busy (n int); INSERT INTO busy VALUES (1)"); err != nil { // takes a transaction id
		t.Fatal(err)
	}
	var xmin, own uint64
	if err := tx.QueryRow(ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, pg_current_xact_id()::text::bigint").Scan(&xmin, &own); err != nil {
		t.Fatal(err)
	}
	if xmin > own {
		t.Fatalf("the open transaction %d is not below the server's xmin %d; the test proves nothing", own, xmin)
	}
	for i := 1; i <= 5; i++ {
		mustAppend(t, ctx, s, fmt.Sprintf("customer-%d", i), domain.ExpectNoStream, event("NotHeld"))
	}
	sub.waitFor(t, 6, 5*time.Second)
	if got := readAll(t, ctx, s); len(got) != 6 {
		t.Fatalf("ReadAll sees %d events while an unrelated transaction is open, want 6", len(got))
	}
	if n, err := s.CountAfter(ctx, domain.Start); err != nil || n != 6 {
		t.Fatalf("CountAfter says %d (%v) while an unrelated transaction is open, want 6", n, err)
	}
	checkSameLog(t, "subscription", sub.snapshot(), readAll(t, ctx, s))
}

// TestHeldBackEventsFollowASilentBlocker: an append transaction that ends
// without notifying anyone (here one that wrote no event) holds committed
// events behind the horizon. Nothing tells the subscription when it ends,
// and it polls once an hour, yet it reads them within moments: a read that
// stops short of committed events is repeated shortly by itself.
func TestHeldBackEventsFollowASilentBlocker(t *testing.T) {
	ctx := testCtx(t)
	s, sub, tx := followedWithOpenTransaction(t, ctx)
	// An append as the store makes them announces itself, then takes a
	// transaction id; this one writes nothing, so its commit notifies nobody.
	if _, err := tx.Exec(ctx, appendLockSQL); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
		t.Fatal(err)
	}
	const held = 3
	for i := 1; i <= held; i++ {
		mustAppend(t, ctx, s, fmt.Sprintf("customer-%d", i), domain.ExpectNoStream, event("Held"))
	}
	time.Sleep(200 * time.Millisecond)
	if got := sub.snapshot(); len(got) != 1 {
		t.Fatalf("the subscription delivered %d events while an older append was open, want 1", len(got))
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// The rechecks back off to at most 50 ms; a few seconds leave room for
	// a loaded machine and are an hour short of the next poll.
	delivered := sub.waitFor(t, 1+held, 3*time.Second)
	checkSameLog(t, "subscription", delivered, readAll(t, ctx, s))
}

// TestCaughtUpSubscriptionRestsUntilNotified: once a subscription has read
// everything committed, it reads again only when told of an append; it does
// not keep re-reading on its own as it does while events are held back.
func TestCaughtUpSubscriptionRestsUntilNotified(t *testing.T) {
	ctx := testCtx(t)
	s := open(t, pgtest.NewDatabase(t), WithPollInterval(time.Hour))
	sub := subscribe(ctx, s, domain.Start)
	defer sub.cancel()
	for i := range 3 {
		mustAppend(t, ctx, s, fmt.Sprintf("customer-%d", i), domain.ExpectNoStream, event("E"))
	}
	sub.waitFor(t, 3, 10*time.Second)
	time.Sleep(100 * time.Millisecond)
	for range 20 {
		s.recheck.mu.Lock()
		pending := s.recheck.pending
		s.recheck.mu.Unlock()
		if pending {
			t.Fatal("a subscription that has read everything has a re-read pending")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
