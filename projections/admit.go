package projections

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kycengine/kyc/domain"
)

// Admission control keeps append-to-visible in this process's live
// projections under MaxLag by holding new commands back. It has two levers,
// both driven by how long events took to become visible:
//
//   - the hold threshold: while a projection applies a batch whose oldest
//     event is older than its threshold, no command starts (holdAfter);
//   - the limit on commands in flight: once the threshold is at its floor
//     and events are still late, at most that many commands run at once
//     (limitAfter).
//
// The second lever is there because the first one runs out. Under 64
// writers the threshold sits at its floor, so commands are held whenever a
// batch is applied, and events are still late: the commands admitted
// between two batches share both cores with the server, and each step from
// an append to its event being visible waits for a core. Fewer commands at
// once cost some throughput and much less waiting: on PostgreSQL, held by
// the threshold alone, 64 writers made 2,170-2,320 events/s at a customers
// p99 of 55-56 ms, 32 writers 2,000-2,040 events/s at 29-31 ms. With the
// limit, 64 writers made about 30% fewer events/s than with the threshold
// alone and their p99 went from 46-65 ms to 33-55 ms (six pairs).

// Admit implements domain.Admission: it returns at once unless a live
// projection of this process is applying an event older than its hold
// threshold, or as many commands are in flight as a projection's limit
// allows; it then waits until neither holds, at most MaxHold. done must be
// called once, and only once, when the command has ended: until then it
// counts as in flight. A projection that stopped (an error, a
// lost lease) holds nobody.
func (e *Engine) Admit(ctx context.Context) (done func(), err error) {
	if e.maxLag <= 0 {
		return func() {}, nil
	}
	var (
		start   time.Time
		timeout <-chan time.Time
		w       waiter
	)
	e.gate.arrive()
	for {
		behind, name := e.behind()
		var wake <-chan struct{}
		if behind <= 0 {
			limit, limiter := e.limit()
			var entered bool
			if entered, wake = e.gate.enter(limit, &w); entered {
				if !start.IsZero() && e.observer != nil {
					e.observer.Held(name, time.Since(start))
				}
				return e.gate.leave, nil
			}
			name = limiter
		}
		if start.IsZero() {
			start = time.Now()
			t := time.NewTimer(e.maxHold)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-e.applied.wait():
		case <-wake:
		case <-timeout:
			e.gate.force(&w)
			if e.observer != nil {
				e.observer.Held(name, time.Since(start))
			}
			return e.gate.leave, nil
		case <-ctx.Done():
			e.gate.depart(&w)
			return nil, ctx.Err()
		}
	}
}

// AdmissionState tells how many commands are in flight (admitted and not
// ended) and waiting in Admit, and the lowest limit on commands in flight
// (+Inf when none holds), for metrics.
func (e *Engine) AdmissionState() (inFlight, waiting int, limit float64) {
	limit, _ = e.limit()
	inFlight, waiting = e.gate.counts()
	return inFlight, waiting, limit
}

// behind is how far the age of the oldest event a live projection is
// applying exceeds that projection's hold threshold, the most of any
// projection, and that projection's name; not positive when none does.
func (e *Engine) behind() (time.Duration, string) {
	worst, name := time.Duration(0), ""
	now := time.Now().UnixNano()
	for i := range e.applying {
		t := e.applying[i].Load()
		if t == 0 {
			continue
		}
		if over := time.Duration(now - t - e.holdAt[i].Load()); name == "" || over > worst {
			worst, name = over, e.projections[i].Name()
		}
	}
	return worst, name
}

// limit is the lowest limit on commands in flight of any projection, and
// that projection's name; +Inf when none has one.
func (e *Engine) limit() (float64, string) {
	lowest, name := math.Inf(1), ""
	for i := range e.limiters {
		if l := e.limiters[i].load(); l < lowest {
			lowest, name = l, e.projections[i].Name()
		}
	}
	return lowest, name
}

// adapt moves projection i's threshold, or its limit, after a live batch
// became visible at now. Only projection i's runner calls it.
func (e *Engine) adapt(i int, batch []domain.RecordedEvent, now time.Time) {
	late := lateEvents(batch, now, e.maxLag)
	threshold := time.Duration(e.holdAt[i].Load())
	limit, demand := &e.limiters[i], e.gate.demand()
	if !limit.active() {
		// With no command at Admit (writers in another process, or none)
		// a limit would have nothing to hold.
		if late == 0 || threshold > e.maxLag/holdFloor || demand == 0 {
			e.holdAt[i].Store(int64(holdAfter(threshold, late, len(batch)-late, e.maxLag)))
			return
		}
		limit.start(demand, now)
	}
	limit.observe(batch, now, demand, e.maxLag)
}

// How the hold threshold adapts. Commands admitted while a batch is applied
// land in the next batch, so they become visible after that batch and their
// own: holding only once the oldest event is MaxLag old lets events become
// visible well after MaxLag when the machine is busy. The threshold tracks
// the events, not the batches, since a late batch is mostly a large one:
// each event visible later than MaxLag lowers it by lateStep (in log scale),
// each one in time raises it by lateStep*lateShare/(1-lateShare), so it
// settles where lateShare of the events are late; half the 1% a p99 of
// MaxLag allows, as the load changes faster than the threshold follows. It
// never goes above MaxLag nor below MaxLag/holdFloor, so commands are held
// only while a batch is actually behind. Under 64 writers the threshold
// falls to its floor (lowering the floor changes what is held); a floor of
// a fortieth instead of a tenth (1.25 ms at the default) keeps batches
// smaller: on PostgreSQL, four interleaved pairs gave a customers p99 of
// 40-44 ms instead of 46-48 ms at the same write rate, and on SQLite at
// 100,000 customers a p50 of 18-19 ms instead of 23-24 ms, p99 unchanged.
const (
	holdFloor = 40
	lateShare = 0.005
	lateStep  = 0.02
)

// How the limit on commands in flight adapts. It comes in when the
// threshold is at its floor and events are still late, at half the
// commands in flight or waiting (the events that brought it in were
// appended with all of them running), or at the limit that last went away
// if that is lower. It is set again after each window of events appended
// since it was last set: limitWindow of them, fewer once limitWindowTime
// has passed, or as soon as more are late than a full window's 1% would be,
// so that a load that jumps is cut at once. Each window scales the limit by
// the square root of how far the window's 90th percentile of
// append-to-visible is from limitTarget of MaxLag, between a half and
// double. Time spent queueing grows with the commands in flight, so the
// limit settles near the most commands that keep that percentile on
// target whatever the machine's speed. The target is the 90th percentile
// rather than the 99th MaxLag bounds, because one window's 99th percentile
// is its two or three slowest events, mostly moments when the whole
// machine stalls, which no limit prevents; in the runs on record the 99th
// percentile over many windows was about 1.5 times the 90th. The square
// root damps one window's noise. A limit that holds nobody back (the
// demand fell under it) after a window in time goes away, and the
// threshold takes over.
const (
	limitWindow     = 256
	limitWindowTime = 250 * time.Millisecond
	minLimitWindow  = 32
	limitTarget     = 0.45
	minLimit        = 1
)

// limiter is one projection's limit on commands in flight. Its runner
// moves it; Admit reads it. mu keeps a runner that is being replaced (a
// rebuild's swap) from touching the window along with its successor.
type limiter struct {
	bits   atomic.Uint64 // the limit's float64 bits; +Inf: none
	mu     sync.Mutex
	window []time.Duration // append-to-visible of the window's events
	late   int             // those of them later than MaxLag
	set    time.Time       // when the limit was set; the window takes events appended since
	last   float64         // the limit when it last went away; 0: never set
}

func (l *limiter) load() float64 { return math.Float64frombits(l.bits.Load()) }

func (l *limiter) active() bool { return !math.IsInf(l.load(), 1) }

func (l *limiter) stop() { l.bits.Store(math.Float64bits(math.Inf(1))) }

func (l *limiter) start(demand int, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	limit := float64(demand) / 2
	if l.last > 0 {
		limit = min(limit, l.last)
	}
	l.setLimit(limit, now)
}

func (l *limiter) setLimit(limit float64, now time.Time) {
	l.bits.Store(math.Float64bits(max(limit, minLimit)))
	l.openWindow(now)
}

// openWindow empties the window for the events appended from now on.
func (l *limiter) openWindow(now time.Time) { l.window, l.late, l.set = l.window[:0], 0, now }

// observe adds a batch, visible at now, to the window and sets the limit
// when the window is complete.
func (l *limiter) observe(batch []domain.RecordedEvent, now time.Time, demand int, maxLag time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ev := range batch {
		if ev.RecordedAt.Before(l.set) {
			continue // appended under the limit before, it tells nothing of this one
		}
		d := now.Sub(ev.RecordedAt)
		l.window = append(l.window, d)
		if d > maxLag {
			l.late++
		}
	}
	n := len(l.window)
	if n < limitWindow && (n < minLimitWindow || now.Sub(l.set) < limitWindowTime && l.late <= limitWindow/100) {
		return
	}
	slices.Sort(l.window)
	p90 := l.window[n*90/100]
	// A limit above the demand holds nobody back: what the window tells
	// is about the demand.
	next := limitAfter(min(l.load(), float64(demand)), p90, maxLag)
	if l.late <= n/100 && next >= float64(demand) {
		l.last = next
		l.stop()
		l.openWindow(now)
		return
	}
	l.setLimit(next, now)
}

// limitAfter is the limit on commands in flight after a window whose 90th
// percentile of append-to-visible was p90.
func limitAfter(limit float64, p90, maxLag time.Duration) float64 {
	ratio := limitTarget * float64(maxLag) / float64(max(p90, time.Microsecond))
	return max(limit*min(max(math.Sqrt(ratio), 0.5), 2), minLimit)
}

// holdAfter is the hold threshold after a batch in which late events became
// visible later than maxLag after their append and onTime did not, given the
// threshold before.
func holdAfter(threshold time.Duration, late, onTime int, maxLag time.Duration) time.Duration {
	rise := lateStep * lateShare / (1 - lateShare)
	next := time.Duration(float64(threshold) * math.Exp(float64(onTime)*rise-float64(late)*lateStep))
	return min(max(next, maxLag/holdFloor), maxLag)
}

// lateEvents counts the events of batch visible at now later than maxLag
// after their append.
func lateEvents(batch []domain.RecordedEvent, now time.Time, maxLag time.Duration) int {
	late := 0
	for _, ev := range batch {
		if now.Sub(ev.RecordedAt) > maxLag {
			late++
		}
	}
	return late
}

// gate counts the commands in flight and those waiting in Admit, and
// queues the ones a limit keeps out: each command that ends wakes the one
// that has waited longest, instead of every waiter at once.
type gate struct {
	mu       sync.Mutex
	inFlight int
	waiting  int
	queue    []*waiter
}

// waiter is one Admit call's place in the gate's queue.
type waiter struct {
	wake  chan struct{} // closed when a command ends; nil when not queued
	woken bool          // woken and not yet back
}

// arrive counts a command that came to Admit.
func (g *gate) arrive() {
	g.mu.Lock()
	g.waiting++
	g.mu.Unlock()
}

// enter lets a command in when fewer than limit are in flight; otherwise
// it queues w and returns the channel that wakes it.
func (g *gate) enter(limit float64, w *waiter) (bool, <-chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	w.woken = false
	if float64(g.inFlight) < limit {
		g.admit(w)
		return true, nil
	}
	if w.wake == nil {
		w.wake = make(chan struct{})
		g.queue = append(g.queue, w)
	}
	return false, w.wake
}

// force lets a command in whatever the limit: it has waited MaxHold.
func (g *gate) force(w *waiter) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.admit(w)
}

func (g *gate) admit(w *waiter) {
	g.unqueue(w)
	g.waiting--
	g.inFlight++
}

// depart takes back a command that gave up waiting. A wake it received
// and did not use goes to the next waiter.
func (g *gate) depart(w *waiter) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.unqueue(w)
	g.waiting--
	if w.woken {
		g.wakeNext()
	}
}

// leave ends a command in flight.
func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight--
	g.wakeNext()
}

func (g *gate) wakeNext() {
	if len(g.queue) == 0 {
		return
	}
	w := g.queue[0]
	g.queue = slices.Delete(g.queue, 0, 1)
	close(w.wake)
	w.wake, w.woken = nil, true
}

func (g *gate) unqueue(w *waiter) {
	if w.wake == nil {
		return
	}
	if i := slices.Index(g.queue, w); i >= 0 {
		g.queue = slices.Delete(g.queue, i, i+1)
	}
	w.wake = nil
}

// counts are the commands in flight and those waiting to start.
func (g *gate) counts() (inFlight, waiting int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight, g.waiting
}

// demand is how many commands are in flight or waiting to start.
func (g *gate) demand() int {
	inFlight, waiting := g.counts()
	return inFlight + waiting
}
