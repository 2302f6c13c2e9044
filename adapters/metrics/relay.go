package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kycengine/kyc/domain"
)

// Relay are the bus relay's metrics; they implement relay.Observer.
type Relay struct {
	published  prometheus.Counter
	batch      prometheus.Histogram
	delay      prometheus.Histogram
	lagEvents  prometheus.Gauge
	lagSeconds prometheus.Gauge
	clock      func() time.Time
}

// Relay registers the relay collectors on m's registry.
func (m *Metrics) Relay() *Relay {
	latency := []float64{.001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10}
	r := &Relay{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kyc_relay_events_published_total", Help: "Events the relay published and the broker acknowledged (redeliveries included).",
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kyc_relay_batch_duration_seconds", Help: "Time from publishing a batch to the broker's acknowledgement of all of it.", Buckets: latency,
		}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kyc_relay_delivery_delay_seconds", Help: "From an event's append to the broker's acknowledgement of its message.", Buckets: latency,
		}),
		lagEvents: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kyc_relay_lag_events", Help: "Events in the log the relay has not published yet.",
		}),
		lagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kyc_relay_lag_seconds", Help: "Upper bound on the age of the oldest event the relay has not published yet.",
		}),
		clock: time.Now,
	}
	m.registry.MustRegister(r.published, r.batch, r.delay, r.lagEvents, r.lagSeconds)
	return r
}

// Published implements relay.Observer.
func (r *Relay) Published(batch []domain.RecordedEvent, took time.Duration) {
	r.published.Add(float64(len(batch)))
	r.batch.Observe(took.Seconds())
	if len(batch) > 0 {
		// The first event of the batch waited longest.
		r.delay.Observe(r.clock().Sub(batch[0].RecordedAt).Seconds())
	}
}

// Lag implements relay.Observer.
func (r *Relay) Lag(events int64, seconds float64) {
	r.lagEvents.Set(float64(events))
	r.lagSeconds.Set(seconds)
}
