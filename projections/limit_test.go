package projections

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/kycengine/kyc/domain"
)

func TestLimitAfter(t *testing.T) {
	const maxLag = 50 * time.Millisecond
	target := time.Duration(limitTarget * float64(maxLag))
	for _, tc := range []struct {
		name  string
		limit float64
		p90   time.Duration
		want  float64
	}{
		{"on target it stays", 20, target, 20},
		{"four times the target halves it", 20, 4 * target, 10},
		{"a quarter of the target doubles it", 20, target / 4, 40},
		{"twice the target: by the square root", 20, 2 * target, 20 / math.Sqrt2},
		{"far over the target: halved at most", 20, 100 * target, 10},
		{"far under the target: doubled at most", 20, target / 100, 40},
		{"never under one command", 1.5, 100 * target, 1},
		{"a window of nothing but zeros", 20, 0, 40},
	} {
		if got := limitAfter(tc.limit, tc.p90, maxLag); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: limitAfter(%v, %s) = %v, want %v", tc.name, tc.limit, tc.p90, got, tc.want)
		}
	}
}

// batchAt makes a batch of n events appended at appended.
func batchAt(n int, appended time.Time) []domain.RecordedEvent {
	b := make([]domain.RecordedEvent, n)
	for i := range b {
		b[i].RecordedAt = appended
	}
	return b
}

func TestLimiterWindows(t *testing.T) {
	const maxLag = 50 * time.Millisecond
	t0 := time.Unix(1_000_000, 0)
	type step struct {
		events   int
		appended time.Duration // after t0
		seen     time.Duration // after t0
		demand   int
		want     float64 // the limit after the step; +Inf: none
	}
	inf := math.Inf(1)
	target := time.Duration(limitTarget * float64(maxLag))
	for _, tc := range []struct {
		name   string
		demand int     // when the limit starts, at t0
		last   float64 // the limit that last went away
		start  float64
		steps  []step
	}{
		{name: "starts at half the demand", demand: 40, start: 20},
		{name: "or where it last went away, if lower", demand: 40, last: 12, start: 12},
		{name: "never at nothing", demand: 1, start: 1},
		{
			name: "a window is limitWindow events", demand: 40, start: 20,
			steps: []step{
				{events: limitWindow - 1, appended: time.Millisecond, seen: time.Millisecond + 2*target, demand: 40, want: 20},
				{events: 1, appended: time.Millisecond, seen: time.Millisecond + 2*target, demand: 40, want: 20 / math.Sqrt2},
			},
		},
		{
			name: "events appended before the limit was set are not counted", demand: 40, start: 20,
			steps: []step{
				{events: 5 * limitWindow, appended: -time.Millisecond, seen: 4 * target, demand: 40, want: 20},
			},
		},
		{
			name: "after limitWindowTime a smaller window will do", demand: 40, start: 20,
			steps: []step{
				{events: minLimitWindow - 1, appended: time.Millisecond, seen: time.Millisecond + 2*target, demand: 40, want: 20},
				{events: 1, appended: time.Millisecond, seen: limitWindowTime, demand: 40, want: 20 / math.Sqrt2},
			},
		},
		{
			name: "more late events than 1% of a window close it at once", demand: 40, start: 20,
			steps: []step{
				{events: minLimitWindow, appended: time.Millisecond, seen: time.Millisecond + target/4, demand: 40, want: 20},
				{events: limitWindow/100 + 1, appended: time.Millisecond, seen: time.Millisecond + 2*maxLag, demand: 40, want: 40},
			},
		},
		{
			name: "what a window says is about the demand when the limit is above it", demand: 40, start: 20,
			steps: []step{
				{events: limitWindow / 2, appended: time.Millisecond, seen: time.Millisecond + target, demand: 40, want: 20},
				{events: limitWindow / 2, appended: time.Millisecond, seen: time.Millisecond + 4*target, demand: 10, want: 5},
			},
		},
		{
			name: "a window in time with the limit at the demand ends the limit", demand: 40, start: 20,
			steps: []step{
				{events: limitWindow, appended: time.Millisecond, seen: time.Millisecond + target/4, demand: 30, want: inf},
			},
		},
		{
			name: "a window with late events does not end it", demand: 40, start: 20,
			steps: []step{
				{events: limitWindow - 3, appended: time.Millisecond, seen: time.Millisecond + target/4, demand: 30, want: 20},
				{events: 3, appended: time.Millisecond, seen: time.Millisecond + 2*maxLag, demand: 30, want: 40},
			},
		},
		{
			name: "the limit it ends on is where the next one starts", demand: 40, start: 20,
			steps: []step{
				{events: limitWindow, appended: time.Millisecond, seen: time.Millisecond + target, demand: 20, want: inf},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l limiter
			l.last = tc.last
			l.start(tc.demand, t0)
			if got := l.load(); got != tc.start {
				t.Fatalf("starts at %v, want %v", got, tc.start)
			}
			for i, s := range tc.steps {
				l.observe(batchAt(s.events, t0.Add(s.appended)), t0.Add(s.seen), s.demand, maxLag)
				if got := l.load(); math.Abs(got-s.want) > 1e-9 && !(math.IsInf(got, 1) && math.IsInf(s.want, 1)) {
					t.Fatalf("step %d: limit %v, want %v", i+1, got, s.want)
				}
			}
			if len(tc.steps) > 0 && !l.active() {
				// It ended at or above the demand of its last window; the
				// next one starts there, under half of a far larger demand.
				last := tc.steps[len(tc.steps)-1]
				l.start(1000, t0.Add(time.Second))
				if l.load() != l.last || l.last < float64(last.demand) {
					t.Fatalf("after ending at %v (demand %d), a new limit starts at %v", l.last, last.demand, l.load())
				}
			}
		})
	}
}

// TestGateNeverLetsMoreInThanTheLimit runs commands that enter, stay a
// moment and leave, some giving up while they wait, under a limit: no more
// than the limit are ever in flight, nobody waits for good, and the gate
// ends empty.
func TestGateNeverLetsMoreInThanTheLimit(t *testing.T) {
	const limit, commands = 3, 64
	var (
		g       gate
		wg      sync.WaitGroup
		mu      sync.Mutex
		most    int
		entered int
	)
	for c := range commands {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(c), 5))
			for range 50 {
				var w waiter
				g.arrive()
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.IntN(3000))*time.Microsecond)
				in, gaveUp := false, false
				for !in && !gaveUp {
					var wake <-chan struct{}
					if in, wake = g.enter(limit, &w); in {
						break
					}
					select {
					case <-wake:
					case <-ctx.Done():
						g.depart(&w)
						gaveUp = true
					}
				}
				cancel()
				if !in {
					continue
				}
				g.mu.Lock()
				n := g.inFlight
				g.mu.Unlock()
				mu.Lock()
				most, entered = max(most, n), entered+1
				mu.Unlock()
				time.Sleep(time.Duration(r.IntN(200)) * time.Microsecond)
				g.leave()
			}
		})
	}
	wg.Wait()
	if most > limit {
		t.Errorf("%d commands in flight under a limit of %d", most, limit)
	}
	if most < limit || entered == 0 {
		t.Errorf("at most %d in flight, %d entered: the limit was never reached", most, entered)
	}
	if g.inFlight != 0 || g.waiting != 0 || len(g.queue) != 0 {
		t.Errorf("gate ends with %d in flight, %d waiting, %d queued", g.inFlight, g.waiting, len(g.queue))
	}
}

func TestGateWakesTheLongestWaiting(t *testing.T) {
	var g gate
	var first, second, third waiter
	g.arrive()
	if in, _ := g.enter(1, &first); !in {
		t.Fatal("an empty gate kept a command out")
	}
	g.arrive()
	g.arrive()
	_, wake2 := g.enter(1, &second)
	_, wake3 := g.enter(1, &third)
	g.leave()
	select {
	case <-wake2:
	default:
		t.Fatal("the command that waited longest was not woken")
	}
	select {
	case <-wake3:
		t.Fatal("a second waiter was woken for one place")
	default:
	}
	// The woken one gives up: its place goes to the next.
	g.depart(&second)
	select {
	case <-wake3:
	default:
		t.Fatal("a wake that was not used was lost")
	}
	if in, _ := g.enter(1, &third); !in {
		t.Fatal("the last waiter was kept out of an empty gate")
	}
	g.arrive()
	var forced waiter
	g.force(&forced)
	if g.inFlight != 2 || g.waiting != 0 {
		t.Fatalf("after a forced entry: %d in flight, %d waiting, want 2 and 0", g.inFlight, g.waiting)
	}
}
