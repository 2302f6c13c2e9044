package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kycengine/kyc/domain"
)

// EventSource is the part of the event store the engine reads.
type EventSource interface {
	ReadAll(ctx context.Context, after domain.Position, limit int) ([]domain.RecordedEvent, error)
	SubscribeAll(ctx context.Context, after domain.Position, handle func(context.Context, domain.RecordedEvent) error) error
}

// EventCounter is implemented by stores that can count the events after a
// position cheaply; the engine then reports lag and rebuild progress in
// events. Without it, lag in events is a lower bound read page by page.
type EventCounter interface {
	CountAfter(ctx context.Context, after domain.Position) (int64, error)
}

// Observer is told what the engine does, for metrics.
type Observer interface {
	// Applied: a batch was committed to a generation; rebuilding says it
	// went to a generation that a rebuild is filling, not the live one.
	Applied(projection string, batch []domain.RecordedEvent, took time.Duration, rebuilding bool)
	// Lag: the active generation's distance from the head of the log.
	Lag(projection string, events int64, seconds float64)
	// Held: Admit held a command back for d because the projection was
	// further behind than EngineConfig.MaxLag.
	Held(projection string, d time.Duration)
}

// Leases hands each projection to one process at a time, for deployments
// where several processes share one read-model store. The lease, not the
// process, owns the projection's runner: when it is lost the runner stops.
type Leases interface {
	// Acquire blocks until this process holds the named lease or ctx ends.
	// The returned context ends when the lease is lost; release gives the
	// lease up and must be called once.
	Acquire(ctx context.Context, name string) (held context.Context, release func(), err error)
}

// EngineConfig wires an Engine.
type EngineConfig struct {
	Events      EventSource
	Store       Store
	Projections []Projection
	Logger      *slog.Logger
	Observer    Observer
	// Leases, when set, makes each projection run only in the process that
	// holds its lease; without it this process is the only one.
	Leases Leases
	// BatchSize caps the events applied in one transaction (default 5000).
	// A batch takes only what has already arrived, so following a quiet log
	// commits each event at once; a projection far behind (a restart)
	// commits big batches, in which a customer's many events cost one row
	// write. Measured on a rebuild: 1000 → 15k events/s, 5000 → 22k.
	BatchSize int
	// RebuildBatchSize caps the batches of a rebuild; by default the
	// store's RebuildBatchSize when it has one, else BatchSize.
	RebuildBatchSize int
	// LagInterval is how often lag is measured for the observer (default 1s).
	LagInterval time.Duration
	// MaxLag, when positive, is how far behind the log the read models of
	// this process's live projections may fall: Admit holds new commands
	// back, and bounds how many run at once, to keep the time from an
	// append to its event being visible in them under it (see admit.go).
	// Writers that outrun the projections would otherwise take the CPU the
	// projections need and the lists would fall seconds behind; held, they
	// go at the pace the read models keep.
	MaxLag time.Duration
	// MaxHold bounds how long Admit holds one command (default 1s): a read
	// model stuck on a slow disk must slow writes down, never stop them.
	MaxHold time.Duration
	Clock   func() time.Time
}

// Engine runs each projection's active generation from its checkpoint and
// rebuilds projections into fresh generations while reads go on.
type Engine struct {
	events      EventSource
	store       Store
	projections []Projection
	log         *slog.Logger
	observer    Observer
	leases      Leases
	batchSize   int
	rebuildSize int
	lagInterval time.Duration
	maxLag      time.Duration
	maxHold     time.Duration
	clock       func() time.Time
	applied     notifier
	// applying holds, per projection (in the order of projections), the
	// RecordedAt in Unix nanoseconds of the first event of the batch its
	// live runner is applying now, 0 when it applies none. Events reach a
	// runner in log order and it applies what has arrived, so that event is
	// the oldest one not applied yet.
	applying []atomic.Int64
	// holdAt is, per projection, the age (in nanoseconds) of the event it
	// applies beyond which Admit holds commands: at most MaxLag, lowered
	// when events become visible later than MaxLag (see holdAfter).
	holdAt []atomic.Int64
	// limiters hold, per projection, how many commands may be in flight at
	// once when its threshold is not enough (see limiter).
	limiters []limiter
	gate     gate

	mu   sync.Mutex
	base context.Context
	// held is, per projection, the context of this process's hold on it:
	// the engine's own context without leases, the lease's with them. A
	// projection absent from it runs in another process.
	held     map[string]context.Context
	live     map[string]*runner
	rebuilds map[string]*RebuildProgress
	lastErr  map[string]error
	wg       sync.WaitGroup
}

type runner struct {
	gen    Generation
	cancel context.CancelFunc
	done   chan struct{}
}

// NewEngine validates the configuration.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.Events == nil || cfg.Store == nil || len(cfg.Projections) == 0 {
		return nil, errors.New("projections: engine needs events, a store and projections")
	}
	e := &Engine{
		events: cfg.Events, store: cfg.Store, log: cfg.Logger, observer: cfg.Observer, leases: cfg.Leases,
		batchSize: cfg.BatchSize, rebuildSize: cfg.RebuildBatchSize, lagInterval: cfg.LagInterval, maxLag: cfg.MaxLag, maxHold: cfg.MaxHold, clock: cfg.Clock,
		held: map[string]context.Context{}, live: map[string]*runner{}, rebuilds: map[string]*RebuildProgress{}, lastErr: map[string]error{},
	}
	names := map[string]bool{}
	for _, p := range cfg.Projections {
		if p == nil || names[p.Name()] {
			return nil, fmt.Errorf("projections: engine: nil or duplicate projection")
		}
		names[p.Name()] = true
		e.projections = append(e.projections, p)
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.batchSize <= 0 {
		e.batchSize = 5000
	}
	if e.rebuildSize <= 0 {
		e.rebuildSize = e.batchSize
		if b, ok := cfg.Store.(RebuildBatcher); ok && b.RebuildBatchSize() > 0 {
			e.rebuildSize = b.RebuildBatchSize()
		}
	}
	if e.lagInterval <= 0 {
		e.lagInterval = time.Second
	}
	if e.maxHold <= 0 {
		e.maxHold = time.Second
	}
	e.applying = make([]atomic.Int64, len(e.projections))
	e.holdAt = make([]atomic.Int64, len(e.projections))
	e.limiters = make([]limiter, len(e.projections))
	for i := range e.holdAt {
		e.holdAt[i].Store(int64(e.maxLag))
		e.limiters[i].stop()
	}
	if e.clock == nil {
		e.clock = time.Now
	}
	return e, nil
}

// Applied implements AppliedNotifier.
func (e *Engine) Applied() <-chan struct{} { return e.applied.wait() }

func (e *Engine) projection(name string) (Projection, error) {
	for _, p := range e.projections {
		if p.Name() == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownProjection, name)
}

func (e *Engine) index(name string) int {
	for i, p := range e.projections {
		if p.Name() == name {
			return i
		}
	}
	panic("projections: engine: unknown projection " + name)
}

// Names lists the projections the engine runs.
func (e *Engine) Names() []string {
	out := make([]string, len(e.projections))
	for i, p := range e.projections {
		out[i] = p.Name()
	}
	return out
}

// Start runs every projection in the background until ctx ends. A
// projection without an active generation gets one, activated at once and
// filled from the start of the log; one whose active generation was built by
// another version of its logic keeps serving reads while a rebuild replaces
// it. Generations left behind by an interrupted rebuild are dropped.
//
// With Leases, each projection starts once this process holds its lease, and
// stops when the lease is lost; Start itself does not wait for leases.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	if e.base != nil {
		e.mu.Unlock()
		return errors.New("projections: engine already started")
	}
	e.base = ctx
	e.mu.Unlock()
	if e.leases != nil {
		for _, p := range e.projections {
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				e.lead(ctx, p)
			}()
		}
	} else {
		var outdated []Projection
		for _, p := range e.projections {
			stale, err := e.takeOver(ctx, p)
			if err != nil {
				return err
			}
			if stale {
				outdated = append(outdated, p)
			}
		}
		for _, p := range outdated {
			e.rebuildOutdated(ctx, p)
		}
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.watchLag(ctx)
	}()
	return nil
}

// takeOver starts this process's runner of p under held: it drops what an
// interrupted rebuild left, makes the first generation if there is none, and
// says whether the active generation was built by another version of p.
func (e *Engine) takeOver(held context.Context, p Projection) (outdated bool, err error) {
	st, ok, err := e.store.State(held, p.Name())
	if err != nil {
		return false, fmt.Errorf("projection %s: %w", p.Name(), err)
	}
	for _, g := range st.Building {
		if err := e.store.DropGeneration(held, p.Name(), g); err != nil {
			return false, fmt.Errorf("projection %s: drop unfinished generation %d: %w", p.Name(), g, err)
		}
		e.log.Info("projection: dropped an unfinished rebuild", "projection", p.Name(), "generation", g)
	}
	if !ok {
		g, err := e.store.CreateGeneration(held, p.Name(), p.Version())
		if err == nil {
			err = e.store.Activate(held, p.Name(), g)
		}
		if err != nil {
			return false, fmt.Errorf("projection %s: first generation: %w", p.Name(), err)
		}
		st.Active = g
		e.log.Info("projection: building from the start of the log", "projection", p.Name(), "generation", g)
	}
	e.mu.Lock()
	e.held[p.Name()] = held
	e.mu.Unlock()
	e.startLive(p, st.Active)
	return ok && st.Version != p.Version(), nil
}

func (e *Engine) rebuildOutdated(held context.Context, p Projection) {
	e.log.Info("projection: built by another version; rebuilding while the old one serves reads", "projection", p.Name(), "version", p.Version())
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if err := e.Rebuild(held, p.Name(), nil); err != nil && held.Err() == nil {
			e.log.Error("projection: rebuild failed", "projection", p.Name(), "err", err)
		}
	}()
}

// lead runs p whenever this process holds its lease, until ctx ends. A
// process that dies loses its lease with its connection, so another one's
// Acquire returns and carries on from the checkpoint the dead one committed.
func (e *Engine) lead(ctx context.Context, p Projection) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		held, release, err := e.leases.Acquire(ctx, "projection:"+p.Name())
		if err != nil {
			if ctx.Err() == nil {
				e.log.Error("projection: cannot take its lease", "projection", p.Name(), "err", err, "retry_in", backoff.String())
				sleepCtx(ctx, backoff)
				backoff = min(2*backoff, 30*time.Second)
			}
			continue
		}
		e.log.Info("projection: lease taken; running here", "projection", p.Name())
		outdated, err := e.takeOver(held, p)
		if err != nil {
			e.log.Error("projection: cannot start", "projection", p.Name(), "err", err, "retry_in", backoff.String())
			release()
			sleepCtx(ctx, backoff)
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if outdated {
			e.rebuildOutdated(held, p)
		}
		<-held.Done()
		e.mu.Lock()
		delete(e.held, p.Name())
		r := e.live[p.Name()]
		delete(e.live, p.Name())
		e.mu.Unlock()
		if r != nil {
			r.cancel()
			<-r.done
		}
		release()
		if ctx.Err() == nil {
			e.log.Warn("projection: lease lost; another process takes over", "projection", p.Name())
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// RunsHere reports whether this process runs the named projection now
// (always, once started, without leases).
func (e *Engine) RunsHere(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.held[name] != nil
}

// Wait returns when everything Start began has stopped (after ctx ended).
func (e *Engine) Wait() { e.wg.Wait() }

// startLive supervises the runner of a projection's active generation: after
// a failure it waits and resumes from the stored checkpoint, which moved
// together with the rows, so nothing is skipped or applied twice.
func (e *Engine) startLive(p Projection, gen Generation) {
	e.mu.Lock()
	parent := e.held[p.Name()]
	e.mu.Unlock()
	ctx, cancel := context.WithCancel(parent)
	r := &runner{gen: gen, cancel: cancel, done: make(chan struct{})}
	e.mu.Lock()
	e.live[p.Name()] = r
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(r.done)
		e.supervise(ctx, p, gen, nil)
	}()
}

// progressWatch follows a rebuilding generation until it is swapped in; after
// that its runner is the live one and reports nothing.
type progressWatch struct {
	active atomic.Bool
	// report gets the size of each batch and whether the generation reached
	// the head of the log with it.
	report func(n int, atHead bool)
}

func (e *Engine) supervise(ctx context.Context, p Projection, gen Generation, watch *progressWatch) {
	forget := func() {
		if f, ok := p.(Forgetter); ok {
			f.Forget(gen)
		}
	}
	defer forget()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		forget()
		from, err := e.store.Checkpoint(ctx, p.Name(), gen)
		if err == nil {
			err = e.run(ctx, p, gen, from, watch)
		}
		if ctx.Err() != nil {
			return
		}
		e.mu.Lock()
		e.lastErr[p.Name()] = err
		e.mu.Unlock()
		e.log.Error("projection stopped; resuming from its checkpoint", "projection", p.Name(), "generation", gen, "err", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// run applies the log to gen from position from until ctx ends or something
// fails. A subscription feeds a channel; the loop takes what has arrived, up
// to a batch, and commits it with the checkpoint in one transaction, so the
// subscription's reading overlaps the store's writing.
func (e *Engine) run(ctx context.Context, p Projection, gen Generation, from domain.Position, watch *progressWatch) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	i := e.index(p.Name())
	applying := &e.applying[i]
	caughtUp := false
	if e.maxLag > 0 && (watch == nil || !watch.active.Load()) {
		// A runner that starts at the head of the log (a restart of a
		// process whose read models were current) is live at once: waiting
		// for a batch that finds the feed empty would, under writers that
		// start as fast as it does, never come, and nobody would be held.
		var err error
		if caughtUp, err = e.atHead(ctx, from); err != nil {
			return err
		}
	}
	feedSize := e.batchSize
	if watch != nil {
		// A rebuilding runner stays on as the live one after the swap, so
		// its feed holds the larger of the two batches.
		feedSize = max(feedSize, e.rebuildSize)
	}
	feed := make(chan domain.RecordedEvent, 2*feedSize)
	subErr := make(chan error, 1)
	go func() {
		subErr <- e.events.SubscribeAll(ctx, from, func(ctx context.Context, ev domain.RecordedEvent) error {
			select {
			case feed <- ev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	batch := make([]domain.RecordedEvent, 0, e.batchSize)
	defer func() {
		applying.Store(0)
		e.limiters[i].stop()
		// Commands queued behind this projection's limit must not wait
		// for a batch that will not come.
		e.applied.broadcast()
	}()
	for {
		select {
		case ev := <-feed:
			batch = append(batch, ev)
		case err := <-subErr:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("subscription: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
		limit := e.batchSize
		if watch != nil && watch.active.Load() {
			limit = e.rebuildSize
		}
	fill:
		for len(batch) < limit {
			select {
			case ev := <-feed:
				batch = append(batch, ev)
			default:
				break fill
			}
		}
		start := time.Now()
		// Only a live runner that has reached the head of the log since it
		// started holds writers back: the lag of a catch-up (after a
		// restart, or a first build) is not the writers' doing, and holding
		// them would not end it soon.
		holds := caughtUp && (watch == nil || !watch.active.Load())
		if holds {
			applying.Store(batch[0].RecordedAt.UnixNano())
		}
		err := p.Apply(ctx, gen, batch, batch[len(batch)-1].Position)
		if holds {
			applying.Store(0)
			if err == nil {
				e.adapt(i, batch, time.Now())
			}
		}
		if err != nil {
			return err
		}
		rebuilding := watch != nil && watch.active.Load()
		if e.observer != nil {
			e.observer.Applied(p.Name(), batch, time.Since(start), rebuilding)
		}
		e.applied.broadcast()
		e.mu.Lock()
		delete(e.lastErr, p.Name())
		e.mu.Unlock()
		if len(feed) == 0 && (rebuilding || (e.maxLag > 0 && !caughtUp)) {
			// The feed can run dry between two pages of a catch-up; the log
			// itself says whether this is its head.
			atHead, err := e.atHead(ctx, batch[len(batch)-1].Position)
			if err != nil {
				return err
			}
			caughtUp = caughtUp || atHead
			if rebuilding {
				watch.report(len(batch), atHead)
			}
		} else if rebuilding {
			watch.report(len(batch), false)
		}
		batch = batch[:0]
	}
}

// atHead reports whether the log holds nothing after pos.
func (e *Engine) atHead(ctx context.Context, pos domain.Position) (bool, error) {
	next, err := e.events.ReadAll(ctx, pos, 1)
	if err != nil {
		return false, fmt.Errorf("read the head of the log: %w", err)
	}
	return len(next) == 0, nil
}

// RebuildProgress describes a running rebuild.
type RebuildProgress struct {
	Projection string     `json:"projection"`
	Generation Generation `json:"generation"`
	// Applied events so far; Total is the size of the log when the rebuild
	// started plus what was appended since (-1 when the store cannot count).
	Applied int64     `json:"applied"`
	Total   int64     `json:"total"`
	Started time.Time `json:"started"`
	Done    bool      `json:"done"`
}

// Rebuild fills a new generation of the named projection from the start of
// the log while the active one keeps serving reads and following the log,
// then swaps them: reads move to the new generation in one step and the old
// one is dropped. progress, when set, is called once the new generation
// exists, after every batch, and a last time with Done set. The
// engine must have been started. If ctx ends first, the new generation is
// dropped and nothing changes.
func (e *Engine) Rebuild(ctx context.Context, name string, progress func(RebuildProgress)) error {
	p, err := e.projection(name)
	if err != nil {
		return err
	}
	e.mu.Lock()
	if e.base == nil {
		e.mu.Unlock()
		return errors.New("projections: rebuild: the engine is not started")
	}
	base := e.held[name]
	if base == nil {
		e.mu.Unlock()
		return fmt.Errorf("projection %s: %w", name, ErrRunsElsewhere)
	}
	if _, busy := e.rebuilds[name]; busy {
		e.mu.Unlock()
		return fmt.Errorf("projection %s: %w", name, ErrRebuildRunning)
	}
	prog := &RebuildProgress{Projection: name, Total: -1, Started: e.clock()}
	e.rebuilds[name] = prog
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.rebuilds, name)
		e.mu.Unlock()
	}()

	if c, ok := e.events.(EventCounter); ok {
		if n, err := c.CountAfter(ctx, domain.Start); err == nil {
			prog.Total = n
		}
	}
	gen, err := e.store.CreateGeneration(ctx, name, p.Version())
	if err != nil {
		return fmt.Errorf("projection %s: new generation: %w", name, err)
	}
	e.mu.Lock()
	prog.Generation = gen
	e.mu.Unlock()
	e.log.Info("projection: rebuild started", "projection", name, "generation", gen, "events", prog.Total)

	// The new runner lives on this process's hold of the projection, not on
	// the caller's context: once swapped in, it is the live runner.
	runCtx, cancel := context.WithCancel(base)
	r := &runner{gen: gen, cancel: cancel, done: make(chan struct{})}
	ready := make(chan struct{})
	var (
		once sync.Once
		// progressMu keeps calls of progress in order and none after the
		// final one.
		progressMu sync.Mutex
		finished   bool
	)
	tell := func(p RebuildProgress, final bool) {
		progressMu.Lock()
		defer progressMu.Unlock()
		if progress != nil && !finished {
			progress(p)
		}
		finished = finished || final
	}
	watch := &progressWatch{}
	watch.active.Store(true)
	watch.report = func(n int, atHead bool) {
		e.mu.Lock()
		if atHead {
			once.Do(func() { close(ready) })
		}
		prog.Applied += int64(n)
		if prog.Total >= 0 && prog.Applied > prog.Total {
			prog.Total = prog.Applied
		}
		snapshot := *prog
		e.mu.Unlock()
		tell(snapshot, false)
	}
	e.mu.Lock()
	first := *prog
	e.mu.Unlock()
	tell(first, false)
	// An empty log has no batch to report reaching its head with.
	if head, err := e.events.ReadAll(ctx, domain.Start, 1); err != nil {
		cancel()
		_ = e.store.DropGeneration(context.WithoutCancel(ctx), name, gen)
		return fmt.Errorf("projection %s: read the log: %w", name, err)
	} else if len(head) == 0 {
		once.Do(func() { close(ready) })
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer close(r.done)
		e.supervise(runCtx, p, gen, watch)
	}()
	abandon := func(cause error) error {
		cancel()
		<-r.done
		if err := e.store.DropGeneration(context.WithoutCancel(ctx), name, gen); err != nil {
			e.log.Error("projection: cannot drop an abandoned rebuild", "projection", name, "generation", gen, "err", err)
		}
		return cause
	}
	select {
	case <-ready:
	case <-ctx.Done():
		return abandon(ctx.Err())
	case <-base.Done():
		return abandon(base.Err())
	}
	watch.active.Store(false)

	// Stop the old generation's runner before the swap drops its tables.
	e.mu.Lock()
	old := e.live[name]
	e.mu.Unlock()
	if old != nil {
		old.cancel()
		<-old.done
	}
	if err := e.store.Activate(context.WithoutCancel(ctx), name, gen); err != nil {
		if old != nil {
			e.startLive(p, old.gen)
		}
		return abandon(fmt.Errorf("projection %s: activate generation %d: %w", name, gen, err))
	}
	e.mu.Lock()
	e.live[name] = r
	prog.Done = true
	snapshot := *prog
	e.mu.Unlock()
	tell(snapshot, true)
	e.log.Info("projection: rebuild done; reads use the new generation", "projection", name, "generation", gen,
		"events", snapshot.Applied, "took", e.clock().Sub(snapshot.Started).Round(time.Millisecond).String())
	return nil
}

// Status is a projection's health.
type Status struct {
	Name       string           `json:"name"`
	Version    int              `json:"version"`
	Generation Generation       `json:"generation"`
	Checkpoint domain.Position  `json:"checkpoint"`
	UpdatedAt  time.Time        `json:"updated_at"`
	LagEvents  int64            `json:"lag_events"`
	LagSeconds float64          `json:"lag_seconds"`
	Error      string           `json:"error,omitempty"`
	Rebuild    *RebuildProgress `json:"rebuild,omitempty"`
	// RunsHere says the process that answered runs the projection; with
	// several processes on one database, exactly one of them does.
	RunsHere bool `json:"runs_here"`
}

// Status reports every projection the engine runs.
func (e *Engine) Status(ctx context.Context) ([]Status, error) {
	out := make([]Status, 0, len(e.projections))
	for _, p := range e.projections {
		st, err := ProjectionStatus(ctx, e.store, e.events, p.Name(), e.clock())
		if err != nil {
			return nil, err
		}
		e.mu.Lock()
		if err := e.lastErr[p.Name()]; err != nil {
			st.Error = err.Error()
		}
		st.RunsHere = e.held[p.Name()] != nil
		if rb := e.rebuilds[p.Name()]; rb != nil {
			cp := *rb
			st.Rebuild = &cp
		}
		e.mu.Unlock()
		out = append(out, st)
	}
	return out, nil
}

// ProjectionStatus reads one projection's state and lag from the stores
// alone, so that a process that does not run the engine (`kyc projections
// status` beside a server) can report it.
func ProjectionStatus(ctx context.Context, store Store, events EventSource, name string, now time.Time) (Status, error) {
	st, ok, err := store.State(ctx, name)
	if err != nil {
		return Status{}, fmt.Errorf("projection %s: %w", name, err)
	}
	out := Status{Name: name}
	if !ok {
		out.LagEvents, out.LagSeconds, err = Lag(ctx, events, domain.Start, now)
		return out, err
	}
	out.Version, out.Generation, out.Checkpoint, out.UpdatedAt = st.Version, st.Active, st.Checkpoint, st.UpdatedAt
	out.LagEvents, out.LagSeconds, err = Lag(ctx, events, st.Checkpoint, now)
	if err != nil {
		return Status{}, fmt.Errorf("projection %s: %w", name, err)
	}
	return out, nil
}

// lagPage bounds the events read to estimate lag from a store that cannot
// count them.
const lagPage = 10000

// Lag is how far a checkpoint is behind the head of the log: in events, and
// in seconds since the oldest event not applied yet was recorded.
func Lag(ctx context.Context, events EventSource, checkpoint domain.Position, now time.Time) (int64, float64, error) {
	next, err := events.ReadAll(ctx, checkpoint, 1)
	if err != nil {
		return 0, 0, fmt.Errorf("lag: %w", err)
	}
	if len(next) == 0 {
		return 0, 0, nil
	}
	seconds := max(now.Sub(next[0].RecordedAt).Seconds(), 0)
	if c, ok := events.(EventCounter); ok {
		n, err := c.CountAfter(ctx, checkpoint)
		if err != nil {
			return 0, 0, fmt.Errorf("lag: %w", err)
		}
		return n, seconds, nil
	}
	page, err := events.ReadAll(ctx, checkpoint, lagPage)
	if err != nil {
		return 0, 0, fmt.Errorf("lag: %w", err)
	}
	return int64(len(page)), seconds, nil
}

func (e *Engine) watchLag(ctx context.Context) {
	if e.observer == nil {
		return
	}
	t := time.NewTicker(e.lagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, p := range e.projections {
			st, err := ProjectionStatus(ctx, e.store, e.events, p.Name(), e.clock())
			if err != nil {
				if ctx.Err() == nil {
					e.log.Warn("projection: cannot measure lag", "projection", p.Name(), "err", err)
				}
				continue
			}
			e.observer.Lag(p.Name(), st.LagEvents, st.LagSeconds)
		}
	}
}

// notifier wakes every waiter at once by closing the channel they hold.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) broadcast() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}
