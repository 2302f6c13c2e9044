package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	eventmemory "github.com/kycengine/kyc/adapters/eventstore/memory"
	readmemory "github.com/kycengine/kyc/adapters/readmodel/memory"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// valve is a projection whose Apply waits while the valve is shut, so a
// test can keep a batch in flight as long as it likes.
type valve struct {
	mu      sync.Mutex
	open    chan struct{} // closed while the valve is open
	entered chan int      // the size of each batch Apply starts
}

func newValve() *valve {
	v := &valve{open: make(chan struct{}), entered: make(chan int, 100)}
	close(v.open)
	return v
}

// The store knows only the engine's projections; the valve borrows a name.
func (*valve) Name() string { return projections.AuditProjection }
func (*valve) Version() int { return 1 }

func (v *valve) Apply(ctx context.Context, _ projections.Generation, events []domain.RecordedEvent, _ domain.Position) error {
	// The valve as it is when the batch enters is the one that holds it: a
	// test that releases and shuts it again in between must not catch the
	// batch in the new one.
	v.mu.Lock()
	open := v.open
	v.mu.Unlock()
	v.entered <- len(events)
	select {
	case <-open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (v *valve) shut() {
	v.mu.Lock()
	v.open = make(chan struct{})
	v.mu.Unlock()
}

func (v *valve) release() {
	v.mu.Lock()
	close(v.open)
	v.mu.Unlock()
}

type heldObserver struct {
	mu      sync.Mutex
	held    []time.Duration
	applied int // events of committed batches, told after the batch has adapted admission
}

func (o *heldObserver) Applied(_ string, batch []domain.RecordedEvent, _ time.Duration, _ bool) {
	o.mu.Lock()
	o.applied += len(batch)
	o.mu.Unlock()
}

func (o *heldObserver) appliedEvents() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.applied
}
func (o *heldObserver) Lag(string, int64, float64) {}
func (o *heldObserver) Held(projection string, d time.Duration) {
	o.mu.Lock()
	o.held = append(o.held, d)
	o.mu.Unlock()
}

func (o *heldObserver) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.held)
}

func appendNote(t *testing.T, ctx context.Context, events *eventmemory.Store) {
	t.Helper()
	e := domain.EventData{ID: uuid.New(), Type: "NoteAdded", SchemaVersion: 1, OccurredAt: time.Now().UTC(),
		Actor: domain.Actor{Kind: domain.ActorOperator, ID: "op", Company: "acme"}, Data: json.RawMessage(`{"text":"x"}`)}
	if _, err := events.Append(ctx, domain.StreamName(uuid.NewString()), domain.ExpectAny, []domain.EventData{e}); err != nil {
		t.Fatal(err)
	}
}

func startValveEngine(t *testing.T, cfg projections.EngineConfig) (*projections.Engine, context.Context) {
	t.Helper()
	cfg.Store = readmemory.New()
	eng, err := projections.NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		eng.Wait()
	})
	if err := eng.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return eng, ctx
}

// liveValve starts an engine on a valve projection whose runner is live
// (it found the log empty when it started) and lets it apply a first batch.
// Appending before the runner has looked at the log would leave it
// catching up until a batch empties its feed, and a batch that follows too
// soon would then hold nobody.
func liveValve(t *testing.T, cfg projections.EngineConfig) (*projections.Engine, context.Context, *eventmemory.Store, *valve) {
	t.Helper()
	events, v := eventmemory.New(), newValve()
	read := &firstRead{Store: events, done: make(chan struct{})}
	cfg.Events, cfg.Projections = read, []projections.Projection{v}
	eng, ctx := startValveEngine(t, cfg)
	select {
	case <-read.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the runner did not look at the log")
	}
	appendNote(t, ctx, events)
	<-v.entered
	return eng, ctx, events, v
}

// admit runs Admit and, when it admits, ends the command at once.
func admit(eng *projections.Engine, ctx context.Context) error {
	done, err := eng.Admit(ctx)
	if err == nil {
		done()
	}
	return err
}

// stillWaiting fails unless the Admit that answers on done is still
// waiting after d.
func stillWaiting(t *testing.T, done <-chan error, d time.Duration, when string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("Admit returned (%v) %s", err, when)
	case <-time.After(d):
	}
}

// admitted fails unless the Admit that answers on done admits within 2s.
func admitted(t *testing.T, done <-chan error, when string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("Admit still waits %s", when)
	}
}

// admitWithin runs admit and reports whether it returned within d, and
// what it returned.
func admitWithin(eng *projections.Engine, ctx context.Context, d time.Duration) (bool, error) {
	done := make(chan error, 1)
	go func() { done <- admit(eng, ctx) }()
	select {
	case err := <-done:
		return true, err
	case <-time.After(d):
		return false, nil
	}
}

func TestAdmitHoldsWritersWhileALiveProjectionIsBehind(t *testing.T) {
	obs := &heldObserver{}
	eng, ctx, events, v := liveValve(t, projections.EngineConfig{Observer: obs, MaxLag: 20 * time.Millisecond, MaxHold: 5 * time.Second})
	if ok, err := admitWithin(eng, ctx, time.Second); !ok || err != nil {
		t.Fatalf("nothing behind: Admit returned %v, %v", ok, err)
	}

	// A batch in flight whose event gets older than MaxLag holds commands
	// until it is applied.
	v.shut()
	appendNote(t, ctx, events)
	<-v.entered
	time.Sleep(60 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- admit(eng, ctx) }()
	stillWaiting(t, done, 200*time.Millisecond, "while the projection applied an event 60ms old with MaxLag 20ms")
	v.release()
	admitted(t, done, "after the batch was applied")
	if obs.count() != 1 {
		t.Fatalf("observer told of %d holds, want 1", obs.count())
	}

	// A cancelled command stops waiting with its context's error.
	v.shut()
	appendNote(t, ctx, events)
	<-v.entered
	time.Sleep(60 * time.Millisecond)
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := admit(eng, cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Admit with an expiring context = %v, want DeadlineExceeded", err)
	}
	v.release()
}

// A runner that starts at the head of the log (here an empty one; after a
// restart, current read models) holds writers from its first batch on:
// writers that start as fast as the runner may never leave it a batch that
// empties the feed, the other way it learns it is live.
func TestAdmitHoldsFromTheFirstBatchOfARunnerAtTheHead(t *testing.T) {
	events, v := eventmemory.New(), newValve()
	// Start returns before the runner looks at the log: the note goes in
	// once it has (a runner that does not look first gets it after a while).
	read := &firstRead{Store: events, done: make(chan struct{})}
	eng, ctx := startValveEngine(t, projections.EngineConfig{Events: read, Projections: []projections.Projection{v},
		MaxLag: 20 * time.Millisecond, MaxHold: 5 * time.Second})
	select {
	case <-read.done:
	case <-time.After(2 * time.Second):
	}
	v.shut()
	appendNote(t, ctx, events)
	<-v.entered
	time.Sleep(60 * time.Millisecond)
	returned, err := admitWithin(eng, ctx, 200*time.Millisecond)
	v.release()
	if err != nil {
		t.Fatal(err)
	}
	if returned {
		t.Fatal("Admit returned while the first batch of a runner started at the head applied an event 60ms old (MaxLag 20ms)")
	}
}

// firstRead tells when the log is first read.
type firstRead struct {
	*eventmemory.Store
	once sync.Once
	done chan struct{}
}

func (r *firstRead) ReadAll(ctx context.Context, after domain.Position, limit int) ([]domain.RecordedEvent, error) {
	defer r.once.Do(func() { close(r.done) })
	return r.Store.ReadAll(ctx, after, limit)
}

// keepBehind keeps a batch in flight until its event is age old, with the
// rest of notes queued behind it, runs meanwhile, then lets them all be
// applied: the notes queued become visible just as late, in the batches
// after it.
func keepBehind(t *testing.T, ctx context.Context, events *eventmemory.Store, v *valve, obs *heldObserver, notes int, age time.Duration, meanwhile func()) {
	t.Helper()
	before := obs.appliedEvents()
	v.shut()
	appendNote(t, ctx, events)
	<-v.entered
	for range notes - 1 {
		appendNote(t, ctx, events)
	}
	time.Sleep(age)
	meanwhile()
	v.release()
	for applied := 1; applied < notes; {
		applied += <-v.entered
	}
	// A batch that entered Apply has yet to commit and adapt admission to
	// its lateness: a command admitted before that would count in the
	// demand it adapts to.
	for deadline := time.Now().Add(10 * time.Second); obs.appliedEvents() < before+notes; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d late events applied after 10 s", obs.appliedEvents()-before, notes)
		}
		time.Sleep(time.Millisecond)
	}
}

// Batches that become visible later than MaxLag lower the age at which
// commands are held, since the commands admitted meanwhile become visible
// later still; batches in time raise it back.
func TestAdmitHoldsSoonerAfterLateBatches(t *testing.T) {
	obs := &heldObserver{}
	eng, ctx, events, v := liveValve(t, projections.EngineConfig{Observer: obs,
		MaxLag: 200 * time.Millisecond, MaxHold: 5 * time.Second})
	// behindBy tells whether Admit holds while a batch is age old.
	behindBy := func(age time.Duration, notes int) (held bool) {
		t.Helper()
		keepBehind(t, ctx, events, v, obs, notes, age, func() {
			ok, err := admitWithin(eng, ctx, 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			held = !ok
		})
		return held
	}
	if behindBy(80*time.Millisecond, 1) {
		t.Fatal("held at 80ms behind with MaxLag 200ms and no late event")
	}
	// Forty events become visible over 250ms after their append: the
	// threshold goes to about 200ms * 0.98^40 = 89ms.
	behindBy(250*time.Millisecond, 40)
	if !behindBy(130*time.Millisecond, 1) {
		t.Fatal("not held at 130ms behind after forty events visible 250ms late (MaxLag 200ms)")
	}
}

func TestAdmitHoldsAtMostMaxHold(t *testing.T) {
	eng, ctx, events, v := liveValve(t, projections.EngineConfig{Observer: &heldObserver{},
		MaxLag: 10 * time.Millisecond, MaxHold: 150 * time.Millisecond})
	v.shut()
	defer v.release()
	appendNote(t, ctx, events)
	<-v.entered
	time.Sleep(30 * time.Millisecond)
	start := time.Now()
	if err := admit(eng, ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 120*time.Millisecond || took > 2*time.Second {
		t.Fatalf("a stuck projection held a command %s, want about MaxHold (150ms)", took)
	}
}

func TestAdmitDoesNotHoldDuringACatchUpOrWhenOff(t *testing.T) {
	for _, tc := range []struct {
		name   string
		maxLag time.Duration
		before int // events in the log before the engine starts
	}{
		{"catching up a backlog", 10 * time.Millisecond, 3},
		{"admission off", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			events := eventmemory.New()
			for range tc.before {
				appendNote(t, context.Background(), events)
			}
			v := newValve()
			v.shut()
			defer v.release()
			eng, ctx := startValveEngine(t, projections.EngineConfig{Events: events, Projections: []projections.Projection{v},
				MaxLag: tc.maxLag, MaxHold: 5 * time.Second})
			if tc.before == 0 {
				appendNote(t, ctx, events)
			}
			<-v.entered
			time.Sleep(50 * time.Millisecond)
			if ok, err := admitWithin(eng, ctx, time.Second); !ok || err != nil {
				t.Fatalf("Admit held a command (returned %v, %v)", ok, err)
			}
		})
	}
}

// When the threshold is at its floor and events are still late, Admit
// also bounds the commands in flight: the limit comes in at half of them,
// and a command beyond it waits until one ends.
func TestAdmitLimitsCommandsInFlightOnceTheThresholdIsAtItsFloor(t *testing.T) {
	obs := &heldObserver{}
	const maxLag = 20 * time.Millisecond
	eng, ctx, events, v := liveValve(t, projections.EngineConfig{Observer: obs, MaxLag: maxLag, MaxHold: 10 * time.Second})
	late := func(notes int) { keepBehind(t, ctx, events, v, obs, notes, 2*maxLag, func() {}) }
	// 200 late events bring the threshold from 20ms to its floor; late
	// batches at the floor with no command in flight bring no limit in.
	late(200)
	late(2)
	if _, waiting, limit := eng.AdmissionState(); waiting != 0 || !math.IsInf(limit, 1) {
		t.Fatalf("no command at Admit: %d waiting, limit %v; want 0 and none", waiting, limit)
	}
	var running []func()
	for range 8 {
		done, err := eng.Admit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		running = append(running, done)
	}
	// A late batch at the floor brings the limit in: 8 commands in flight,
	// so 4. (The second note, appended before the limit, leaves it alone.)
	late(2)
	if n, waiting, limit := eng.AdmissionState(); n != 8 || waiting != 0 || limit != 4 {
		t.Fatalf("admission: %d in flight, %d waiting, limit %v; want 8, 0 and 4", n, waiting, limit)
	}
	// The 8 commands above may have waited for the last of the 200 to be
	// applied; only the hold below is counted.
	holds := obs.count()
	ended := make(chan error, 1)
	go func() { ended <- admit(eng, ctx) }()
	for i := range 5 {
		stillWaiting(t, ended, 100*time.Millisecond, fmt.Sprintf("with %d commands in flight and a limit of 4", 8-i))
		running[i]()
	}
	admitted(t, ended, "with 3 commands in flight and a limit of 4")
	if n := obs.count() - holds; n != 1 {
		t.Fatalf("observer told of %d holds, want 1", n)
	}
	for _, done := range running[5:] {
		done()
	}
}
