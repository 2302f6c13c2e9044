// Package metrics exposes the engine's Prometheus metrics: commands by type
// and outcome, append latency, concurrency conflicts, group-commit batches and
// HTTP requests.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kycengine/kyc/domain"
)

// Metrics holds the collectors on a registry of its own (no global state).
type Metrics struct {
	registry        *prometheus.Registry
	commands        *prometheus.CounterVec
	commandDuration *prometheus.HistogramVec
	conflicts       *prometheus.CounterVec
	appendDuration  *prometheus.HistogramVec
	batchRequests   prometheus.Histogram
	batchEvents     prometheus.Histogram
	batchDuration   prometheus.Histogram
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
}

// New registers the engine's collectors and the Go runtime's.
func New() *Metrics {
	latency := []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5}
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kyc_commands_total", Help: "Commands handled, by command type and outcome.",
		}, []string{"command", "outcome"}),
		commandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kyc_command_duration_seconds", Help: "Time to decide and append a command.", Buckets: latency,
		}, []string{"command"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kyc_concurrency_conflicts_total", Help: "Appends refused because the stream moved on; the command was decided again.",
		}, []string{"command"}),
		appendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kyc_event_append_duration_seconds", Help: "Latency of event-store appends, durable.", Buckets: latency,
		}, []string{"result"}),
		batchRequests: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kyc_group_commit_batch_requests", Help: "Appends committed together in one group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		batchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kyc_group_commit_batch_events", Help: "Events committed together in one group commit.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "kyc_group_commit_duration_seconds", Help: "Time to write and sync one group commit.", Buckets: latency,
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kyc_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"method", "route", "code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "kyc_http_request_duration_seconds", Help: "HTTP request latency by route.", Buckets: latency,
		}, []string{"method", "route"}),
	}
	m.registry.MustRegister(m.commands, m.commandDuration, m.conflicts, m.appendDuration, m.batchRequests, m.batchEvents,
		m.batchDuration, m.requests, m.requestDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Registry is for callers that add collectors of their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// CommandFinished implements domain.ServiceObserver.
func (m *Metrics) CommandFinished(command, outcome string, d time.Duration) {
	m.commands.WithLabelValues(command, outcome).Inc()
	m.commandDuration.WithLabelValues(command).Observe(d.Seconds())
}

// ConcurrencyConflict implements domain.ServiceObserver.
func (m *Metrics) ConcurrencyConflict(command string) {
	m.conflicts.WithLabelValues(command).Inc()
}

// BatchCommitted is the embedded store's group-commit observer.
func (m *Metrics) BatchCommitted(requests, events int, d time.Duration) {
	m.batchRequests.Observe(float64(requests))
	m.batchEvents.Observe(float64(events))
	m.batchDuration.Observe(d.Seconds())
}

// Request implements the HTTP API's request observer.
func (m *Metrics) Request(method, route string, status int, d time.Duration) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.requestDuration.WithLabelValues(method, route).Observe(d.Seconds())
}

// AppendStore is what InstrumentStore wraps: an event store that also finds
// events by idempotency key.
type AppendStore interface {
	domain.EventStore
	domain.IdempotencyIndex
}

// InstrumentStore times every append of store.
func (m *Metrics) InstrumentStore(store AppendStore) AppendStore {
	return &instrumentedStore{AppendStore: store, m: m}
}

type instrumentedStore struct {
	AppendStore
	m *Metrics
}

func (s *instrumentedStore) Append(ctx context.Context, stream string, expected domain.ExpectedRevision, events []domain.EventData) (domain.AppendResult, error) {
	start := time.Now()
	res, err := s.AppendStore.Append(ctx, stream, expected, events)
	result := "ok"
	switch {
	case errors.Is(err, domain.ErrConcurrencyConflict):
		result = "conflict"
	case err != nil:
		result = "error"
	}
	s.m.appendDuration.WithLabelValues(result).Observe(time.Since(start).Seconds())
	return res, err
}
