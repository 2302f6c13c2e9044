// Package relay publishes the event log to a message bus: every event, in
// log order, through a Watermill Publisher, to one topic.
//
// Delivery is at-least-once. The relay takes the events after its
// checkpoint in batches, publishes a batch, and saves the position of its
// last event only once every Publish call for it has returned (a Publisher
// returns once the broker has accepted the messages). A crash between the
// two publishes the batch again on restart: the duplicates carry the same
// message UUID, the event id, which consumers deduplicate on.
//
// Order is kept per customer. Within a batch the events are split into
// lanes by customer, each lane published by one Publish call in log order,
// the lanes side by side (brokers acknowledge one publisher's messages in
// turn, so parallel lanes are where the throughput comes from); batches
// follow each other. Events of different customers may arrive in another
// order than the log's.
package relay

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/kycengine/kyc/adapters/delivery/cloudevent"
	"github.com/kycengine/kyc/domain"
)

// DefaultTopic is the topic the relay publishes to.
const DefaultTopic = "kyc.events"

// Log is what the relay reads of the event store.
type Log interface {
	SubscribeAll(ctx context.Context, after domain.Position, handle func(context.Context, domain.RecordedEvent) error) error
}

// Checkpoints remembers how far the relay has published.
type Checkpoints interface {
	Checkpoint(ctx context.Context, name string) (domain.Position, error)
	SaveCheckpoint(ctx context.Context, name string, pos domain.Position) error
}

// Counter is implemented by stores that count the events after a position
// cheaply; the relay then reports its lag in events exactly.
type Counter interface {
	CountAfter(ctx context.Context, after domain.Position) (int64, error)
}

// Observer is told what the relay does, for metrics.
type Observer interface {
	// Published: a batch was acknowledged by the broker after took.
	Published(batch []domain.RecordedEvent, took time.Duration)
	// Lag: events not yet published, and an upper bound on the age of the
	// oldest of them (0 when there are none).
	Lag(events int64, seconds float64)
}

// Config wires a Relay.
type Config struct {
	Log         Log
	Publisher   message.Publisher
	Checkpoints Checkpoints
	// Name keys the checkpoint (default "relay").
	Name string
	// Topic (default DefaultTopic) and Source (ce_source, default
	// cloudevent.DefaultSource) of the published messages.
	Topic  string
	Source string
	// Lanes is how many Publish calls run side by side (default 8);
	// BatchSize caps the events published before a checkpoint (default 1024).
	Lanes     int
	BatchSize int
	// RetryInterval is the first wait after a failure; it doubles up to
	// a minute (default 200ms).
	RetryInterval time.Duration
	Observer      Observer
	Logger        *slog.Logger
}

// Relay publishes the log. Run it in exactly one process per deployment
// (under the "relay" lease where processes share a database), one Run at a
// time: two relays would each publish everything.
type Relay struct {
	cfg Config
	// counted is when the lag was last counted in the store.
	counted time.Time
}

// lagCountInterval spaces the store's counts of the lag: a count is a query,
// and a relay following a quiet log publishes one event per batch.
const lagCountInterval = time.Second

// New validates the configuration.
func New(cfg Config) (*Relay, error) {
	switch {
	case cfg.Log == nil:
		return nil, errors.New("relay: no event log")
	case cfg.Publisher == nil:
		return nil, errors.New("relay: no publisher")
	case cfg.Checkpoints == nil:
		return nil, errors.New("relay: no checkpoint store")
	case cfg.Lanes < 0 || cfg.BatchSize < 0 || cfg.RetryInterval < 0:
		return nil, errors.New("relay: lanes, batch size and retry interval must not be negative")
	}
	if cfg.Name == "" {
		cfg.Name = "relay"
	}
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.Lanes == 0 {
		cfg.Lanes = 8
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 1024
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = 200 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Relay{cfg: cfg}, nil
}

// Run publishes until ctx ends, resuming from the saved checkpoint after
// any failure (a publish the broker refused, a lost store) with back-off.
// It returns ctx's error.
func (r *Relay) Run(ctx context.Context) error {
	wait := r.cfg.RetryInterval
	for {
		err := r.runOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.cfg.Logger.Warn("relay: publishing stopped; resuming from the checkpoint", "err", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Minute)
	}
}

// runOnce reads from the checkpoint and publishes until something fails.
func (r *Relay) runOnce(ctx context.Context) error {
	from, err := r.cfg.Checkpoints.Checkpoint(ctx, r.cfg.Name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The subscription hands events over a channel so the publisher can
	// take whatever has queued up as one batch.
	events := make(chan domain.RecordedEvent, 2*r.cfg.BatchSize)
	subDone := make(chan error, 1)
	go func() {
		subDone <- r.cfg.Log.SubscribeAll(ctx, from, func(ctx context.Context, e domain.RecordedEvent) error {
			select {
			case events <- e:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		})
	}()
	batch := make([]domain.RecordedEvent, 0, r.cfg.BatchSize)
	for {
		batch = batch[:0]
		select {
		case e := <-events:
			batch = append(batch, e)
		case err := <-subDone:
			return fmt.Errorf("relay: reading the log: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	fill:
		for len(batch) < r.cfg.BatchSize {
			select {
			case e := <-events:
				batch = append(batch, e)
			default:
				break fill
			}
		}
		if err := r.publish(ctx, batch, len(events)); err != nil {
			cancel(err)
			<-subDone
			return err
		}
	}
}

// publish sends one batch, lane by lane, and moves the checkpoint past it.
func (r *Relay) publish(ctx context.Context, batch []domain.RecordedEvent, pending int) error {
	start := time.Now()
	lanes := make([][]*message.Message, r.cfg.Lanes)
	for _, e := range batch {
		h := fnv.New32a()
		h.Write([]byte(e.Stream))
		i := h.Sum32() % uint32(len(lanes))
		lanes[i] = append(lanes[i], cloudevent.ToMessage(e, r.cfg.Source))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(lanes))
	for i, msgs := range lanes {
		if len(msgs) == 0 {
			continue
		}
		wg.Go(func() { errs[i] = r.cfg.Publisher.Publish(r.cfg.Topic, msgs...) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("relay: publish %d events: %w", len(batch), err)
	}
	last := batch[len(batch)-1]
	if err := r.cfg.Checkpoints.SaveCheckpoint(ctx, r.cfg.Name, last.Position); err != nil {
		return fmt.Errorf("relay: save checkpoint %s: %w", last.Position, err)
	}
	if r.cfg.Observer != nil {
		r.cfg.Observer.Published(batch, time.Since(start))
		r.reportLag(ctx, last, pending)
	}
	return nil
}

// reportLag tells the observer how far behind the log the relay is after
// publishing up to last, with pending events already read and queued: the
// store's exact count at most once per lagCountInterval, the queue (a lower
// bound) in between.
func (r *Relay) reportLag(ctx context.Context, last domain.RecordedEvent, pending int) {
	events := int64(pending)
	if c, ok := r.cfg.Log.(Counter); ok && time.Since(r.counted) >= lagCountInterval {
		r.counted = time.Now()
		if n, err := c.CountAfter(ctx, last.Position); err == nil {
			events = n
		}
	}
	seconds := 0.0
	if events > 0 {
		// The next event was recorded after this one: its age is at most this.
		seconds = time.Since(last.RecordedAt).Seconds()
	}
	r.cfg.Observer.Lag(events, seconds)
}
