package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kycengine/kyc/domain"
)

// Projections are the projection engine's metrics; they implement
// projections.Observer.
type Projections struct {
	applied    *prometheus.CounterVec
	batch      *prometheus.HistogramVec
	visible    *prometheus.HistogramVec
	lagEvents  *prometheus.GaugeVec
	lagSeconds *prometheus.GaugeVec
	held       *prometheus.HistogramVec
	clock      func() time.Time
}

// Projections registers the projection collectors on m's registry.
func (m *Metrics) Projections() *Projections {
	latency := []float64{.001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10}
	p := &Projections{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kyc_projection_events_applied_total", Help: "Events applied by each projection, rebuilds included.",
		}, []string{"projection"}),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kyc_projection_batch_duration_seconds", Help: "Time to apply one batch and commit it with the checkpoint.", Buckets: latency,
		}, []string{"projection"}),
		visible: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kyc_projection_visible_delay_seconds", Help: "From an event's append to its commit in the read model.", Buckets: latency,
		}, []string{"projection"}),
		lagEvents: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kyc_projection_lag_events", Help: "Events in the log that the projection's active generation has not applied.",
		}, []string{"projection"}),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kyc_projection_lag_seconds", Help: "Age of the oldest event the projection's active generation has not applied.",
		}, []string{"projection"}),
		held: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kyc_commands_held_seconds", Help: "Time commands were held back to keep the projection within --max-read-lag (by its hold threshold or its limit on commands in flight).", Buckets: latency,
		}, []string{"projection"}),
		clock: time.Now,
	}
	m.registry.MustRegister(p.applied, p.batch, p.visible, p.lagEvents, p.lagSeconds, p.held)
	return p
}

// Applied implements projections.Observer.
func (p *Projections) Applied(projection string, batch []domain.RecordedEvent, took time.Duration, rebuilding bool) {
	p.applied.WithLabelValues(projection).Add(float64(len(batch)))
	p.batch.WithLabelValues(projection).Observe(took.Seconds())
	// A rebuild applies old events; their age says nothing about delay.
	if len(batch) > 0 && !rebuilding {
		// The last event waited least; the first one is the batch's worst case.
		p.visible.WithLabelValues(projection).Observe(p.clock().Sub(batch[0].RecordedAt).Seconds())
	}
}

// Lag implements projections.Observer.
func (p *Projections) Lag(projection string, events int64, seconds float64) {
	p.lagEvents.WithLabelValues(projection).Set(float64(events))
	p.lagSeconds.WithLabelValues(projection).Set(seconds)
}

// Held implements projections.Observer.
func (p *Projections) Held(projection string, d time.Duration) {
	p.held.WithLabelValues(projection).Observe(d.Seconds())
}

// AdmissionState is what Admission reads: the engine's commands in flight
// and waiting, and its limit on commands in flight (+Inf: none).
type AdmissionState interface {
	AdmissionState() (inFlight, waiting int, limit float64)
}

// Admission registers gauges read from a at each scrape.
func (m *Metrics) Admission(a AdmissionState) {
	gauge := func(name, help string, read func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, read)
	}
	m.registry.MustRegister(
		gauge("kyc_commands_in_flight", "Commands admitted and not ended.", func() float64 {
			n, _, _ := a.AdmissionState()
			return float64(n)
		}),
		gauge("kyc_commands_waiting", "Commands waiting to be admitted (see --max-read-lag).", func() float64 {
			_, n, _ := a.AdmissionState()
			return float64(n)
		}),
		gauge("kyc_commands_in_flight_limit", "How many commands may be in flight at once to keep the projections within --max-read-lag; +Inf when no limit holds.", func() float64 {
			_, _, l := a.AdmissionState()
			return l
		}),
	)
}
