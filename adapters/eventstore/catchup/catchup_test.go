package catchup

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kycengine/kyc/domain"
)

// memLog is a minimal global log: positions 1, 2, 3, ...
type memLog struct {
	Notifier
	mu     sync.Mutex
	events []domain.RecordedEvent
	// duringRead, when set, runs inside Read after the page was taken, to
	// simulate a commit that lands while a subscriber reads.
	duringRead func()
}

func (l *memLog) append(n int) {
	l.mu.Lock()
	for range n {
		p := uint64(len(l.events) + 1)
		l.events = append(l.events, domain.RecordedEvent{
			EventData: domain.EventData{ID: uuid.New(), Type: "T"},
			Position:  domain.Position{Commit: p, Prepare: p},
		})
	}
	l.mu.Unlock()
	l.Broadcast()
}

func (l *memLog) read(_ context.Context, after domain.Position, limit int) ([]domain.RecordedEvent, error) {
	l.mu.Lock()
	var page []domain.RecordedEvent
	for _, e := range l.events {
		if after.Less(e.Position) && len(page) < limit {
			page = append(page, e)
		}
	}
	hook := l.duringRead
	l.duringRead = nil
	l.mu.Unlock()
	if hook != nil {
		hook()
	}
	return page, nil
}

func (l *memLog) source(pageSize int) Source {
	return Source{Read: l.read, Notify: l.Wait, PageSize: pageSize}
}

var errStop = errors.New("stop")

// collect subscribes until it has n events, then stops the subscription.
func collect(ctx context.Context, src Source, after domain.Position, n int) ([]domain.RecordedEvent, error) {
	var got []domain.RecordedEvent
	err := Run(ctx, src, after, func(_ context.Context, e domain.RecordedEvent) error {
		got = append(got, e)
		if len(got) == n {
			return errStop
		}
		return nil
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return got, err
}

func checkSequence(t *testing.T, got []domain.RecordedEvent, first uint64, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("got %d events, want %d", len(got), n)
	}
	for i, e := range got {
		if want := first + uint64(i); e.Position.Commit != want {
			t.Fatalf("event %d at position %s, want %d", i, e.Position, want)
		}
	}
}

func TestCatchUpThenLive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l := &memLog{}
	l.append(10)
	done := make(chan struct{})
	var got []domain.RecordedEvent
	var err error
	go func() {
		defer close(done)
		// A page size of 3 makes the catch-up read several full pages.
		got, err = collect(ctx, l.source(3), domain.Position{Commit: 2, Prepare: 2}, 8+25)
	}()
	for range 25 {
		l.append(1)
		time.Sleep(time.Millisecond)
	}
	<-done
	if err != nil {
		t.Fatal(err)
	}
	checkSequence(t, got, 3, 33)
}

func TestNoLostWakeup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l := &memLog{}
	// The commit lands after the subscriber's read saw nothing but before it
	// waits; only a channel taken before the read catches it.
	l.duringRead = func() { l.append(1) }
	got, err := collect(ctx, l.source(10), domain.Start, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkSequence(t, got, 1, 1)
}

func TestConcurrentWriters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := &memLog{}
	const writers, each = 8, 200
	done := make(chan struct{})
	var got []domain.RecordedEvent
	var err error
	go func() {
		defer close(done)
		got, err = collect(ctx, l.source(7), domain.Start, writers*each)
	}()
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				l.append(1)
			}
		})
	}
	wg.Wait()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	checkSequence(t, got, 1, writers*each)
}

func TestHandlerErrorIsReturned(t *testing.T) {
	l := &memLog{}
	l.append(5)
	calls := 0
	err := Run(context.Background(), l.source(2), domain.Start, func(context.Context, domain.RecordedEvent) error {
		calls++
		if calls == 3 {
			return errStop
		}
		return nil
	})
	if err != errStop {
		t.Fatalf("Run returned %v, want the handler's error unchanged", err)
	}
	if calls != 3 {
		t.Fatalf("handler called %d times after failing, want 3", calls)
	}
}

func TestContextEndStopsWaiting(t *testing.T) {
	l := &memLog{}
	l.append(2)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	seen := make(chan struct{}, 2)
	go func() {
		errc <- Run(ctx, l.source(10), domain.Start, func(context.Context, domain.RecordedEvent) error {
			seen <- struct{}{}
			return nil
		})
	}()
	<-seen
	<-seen
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestCancelledBeforeStart(t *testing.T) {
	l := &memLog{}
	l.append(1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Run(ctx, l.source(10), domain.Start, func(context.Context, domain.RecordedEvent) error {
		t.Error("handler called with a cancelled context")
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
}

func TestPollWithoutNotify(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l := &memLog{}
	src := Source{Read: l.read, PollInterval: 5 * time.Millisecond}
	go func() {
		time.Sleep(20 * time.Millisecond)
		l.mu.Lock()
		l.events = append(l.events, domain.RecordedEvent{Position: domain.Position{Commit: 1, Prepare: 1}})
		l.mu.Unlock()
	}()
	got, err := collect(ctx, src, domain.Start, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkSequence(t, got, 1, 1)
}

func TestOutOfOrderReadIsAnError(t *testing.T) {
	read := func(context.Context, domain.Position, int) ([]domain.RecordedEvent, error) {
		return []domain.RecordedEvent{{Position: domain.Position{Commit: 1, Prepare: 1}}}, nil
	}
	err := Run(context.Background(), Source{Read: read, Notify: (&Notifier{}).Wait}, domain.Position{Commit: 1, Prepare: 1},
		func(context.Context, domain.RecordedEvent) error { return nil })
	if !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("Run returned %v, want ErrOutOfOrder", err)
	}
}

func TestReadErrorIsWrapped(t *testing.T) {
	boom := errors.New("boom")
	read := func(context.Context, domain.Position, int) ([]domain.RecordedEvent, error) { return nil, boom }
	err := Run(context.Background(), Source{Read: read, Notify: (&Notifier{}).Wait}, domain.Start,
		func(context.Context, domain.RecordedEvent) error { return nil })
	if !errors.Is(err, boom) {
		t.Fatalf("Run returned %v, want it to wrap the read error", err)
	}
}

func TestInvalidSource(t *testing.T) {
	h := func(context.Context, domain.RecordedEvent) error { return nil }
	l := &memLog{}
	for name, src := range map[string]Source{
		"no read":           {Notify: l.Wait},
		"no notify or poll": {Read: l.read},
	} {
		if err := Run(context.Background(), src, domain.Start, h); err == nil {
			t.Errorf("%s: Run accepted an invalid source", name)
		}
	}
	if err := Run(context.Background(), l.source(1), domain.Start, nil); err == nil {
		t.Error("Run accepted a nil handler")
	}
}

func TestNotifier(t *testing.T) {
	var n Notifier
	n.Broadcast() // nobody waiting: must not panic
	a, b := n.Wait(), n.Wait()
	if a != b {
		t.Fatal("waiters before one broadcast got different channels")
	}
	n.Broadcast()
	for _, ch := range []<-chan struct{}{a, b} {
		select {
		case <-ch:
		default:
			t.Fatal("Broadcast did not wake a waiter")
		}
	}
	c := n.Wait()
	select {
	case <-c:
		t.Fatal("a channel taken after Broadcast is already closed")
	default:
	}
	n.Broadcast()
	n.Broadcast() // twice in a row: must not close a closed channel
	<-c
}

// TestMinReadIntervalSpacesCaughtUpReads: commits every millisecond wake a
// caught-up subscription each time, but it reads at most once an interval,
// and misses nothing.
func TestMinReadIntervalSpacesCaughtUpReads(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := &memLog{}
	const interval = 40 * time.Millisecond
	var (
		mu    sync.Mutex
		reads []time.Time
	)
	src := log.source(1000)
	src.MinReadInterval = interval
	src.Read = func(ctx context.Context, after domain.Position, limit int) ([]domain.RecordedEvent, error) {
		mu.Lock()
		reads = append(reads, time.Now())
		mu.Unlock()
		return log.read(ctx, after, limit)
	}
	const n = 200
	go func() {
		for range n {
			log.append(1)
			time.Sleep(time.Millisecond)
		}
	}()
	got, err := collect(ctx, src, domain.Start, n)
	if err != nil {
		t.Fatal(err)
	}
	checkSequence(t, got, 1, n)
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(reads); i++ {
		if gap := reads[i].Sub(reads[i-1]); gap < interval {
			t.Fatalf("read %d began %s after the one before, want at least %s (%d reads in all)", i, gap, interval, len(reads))
		}
	}
}

// TestMinReadIntervalDoesNotSlowCatchingUp: full pages are read back to back.
// The interval is an hour, so a paced read would outlast the test.
func TestMinReadIntervalDoesNotSlowCatchingUp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	log := &memLog{}
	log.append(100)
	src := log.source(10)
	src.MinReadInterval = time.Hour
	got, err := collect(ctx, src, domain.Start, 100)
	if err != nil {
		t.Fatal(err)
	}
	checkSequence(t, got, 1, 100)
}
