package webhook

import (
	"math/rand/v2"
	"time"
)

// Schedule is the long back-off between rounds of a delivery. A round is
// one dispatch of the delivery: a request and the quick in-process retries
// of [Retry]; when a round fails, the next one starts after the delay of
// its turn, give or take Jitter, and when the last round fails the
// delivery is dead. A delivery therefore gets len(Delays)+1 rounds.
type Schedule struct {
	// Delays are the waits after the first, second, ... failed round.
	Delays []time.Duration
	// Jitter spreads each wait uniformly over ±Jitter of it (0.2: ±20%),
	// so deliveries that failed together (a receiver's outage) do not all
	// come back at the same moment.
	Jitter float64
}

// DefaultSchedule gives a delivery 10 rounds. The waits add up to 31h42m30s
// (between 25h22m and 38h03m with the ±20% jitter), so a receiver that is
// down for a whole day still gets its events; with the default [Retry] a
// round is up to 3 requests, so up to 30 requests in all.
var DefaultSchedule = Schedule{
	Delays: []time.Duration{
		30 * time.Second,
		2 * time.Minute,
		10 * time.Minute,
		30 * time.Minute,
		time.Hour,
		2 * time.Hour,
		4 * time.Hour,
		8 * time.Hour,
		16 * time.Hour,
	},
	Jitter: 0.2,
}

// Rounds is how many rounds a delivery gets before it is dead.
func (s Schedule) Rounds() int { return len(s.Delays) + 1 }

// Span is the shortest and the longest time from the first round to the
// last, jitter included (the in-process retries add seconds to each round).
func (s Schedule) Span() (shortest, longest time.Duration) {
	var total time.Duration
	for _, d := range s.Delays {
		total += d
	}
	return time.Duration(float64(total) * (1 - s.Jitter)), time.Duration(float64(total) * (1 + s.Jitter))
}

// delay is the wait after the failed round number round (from 1), jittered.
func (s Schedule) delay(round int) time.Duration {
	d := s.Delays[min(round, len(s.Delays))-1]
	if s.Jitter <= 0 {
		return d
	}
	f := 1 + s.Jitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}

// Retry is the quick in-process retry of one round, run by Watermill's
// Retry middleware: it rides out a blip (a restarting receiver, a dropped
// connection) without waiting for the long [Schedule].
type Retry struct {
	// MaxRetries is how many requests follow the first one in a round.
	MaxRetries int
	// InitialInterval is the first wait; each next one is Multiplier times
	// longer, at most MaxInterval, spread over ±RandomizationFactor.
	InitialInterval     time.Duration
	MaxInterval         time.Duration
	Multiplier          float64
	RandomizationFactor float64
}

// DefaultRetry retries twice, after about 1s and 2s (±50%).
var DefaultRetry = Retry{MaxRetries: 2, InitialInterval: time.Second, MaxInterval: 10 * time.Second, Multiplier: 2, RandomizationFactor: 0.5}

// worstCase bounds how long a round may take with requests of at most
// timeout each: the lease a claimed delivery needs.
func (r Retry) worstCase(timeout time.Duration) time.Duration {
	total := time.Duration(r.MaxRetries+1) * timeout
	wait := r.InitialInterval
	for range r.MaxRetries {
		total += time.Duration(float64(min(wait, r.MaxInterval)) * (1 + r.RandomizationFactor))
		wait = time.Duration(float64(wait) * r.Multiplier)
	}
	return total
}
