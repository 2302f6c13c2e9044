package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/kycengine/kyc/domain"
)

// readAllPage is how many events ReadAll asks the server for at once; events
// outside the log are skipped, so a page can hold fewer than that.
const readAllPage = 512

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// readStream reads raw events of a stream. from is a revision, or
// domain.StreamEnd for a backwards read from the last event.
func (s *Store) readStream(ctx context.Context, stream string, dir domain.Direction, from uint64, limit int) ([]*esdb.RecordedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := s.current()
	if err != nil {
		return nil, err
	}
	opts := esdb.ReadStreamOptions{Direction: esdb.Forwards, From: esdb.Revision(from)}
	if dir == domain.Backwards {
		opts.Direction = esdb.Backwards
		if from == domain.StreamEnd {
			opts.From = esdb.End{}
		}
	}
	count := uint64(math.MaxUint64)
	if limit > 0 {
		count = uint64(limit)
	}
	rs, err := c.ReadStream(ctx, stream, opts, count)
	if err != nil {
		return nil, s.classify(ctx, c, err)
	}
	defer rs.Close()
	var out []*esdb.RecordedEvent
	for {
		ev, err := rs.Recv()
		if isEOF(err) {
			return out, nil
		}
		if err != nil {
			return nil, s.classify(ctx, c, err)
		}
		out = append(out, ev.Event)
	}
}

// ReadStream implements domain.EventStore.
func (s *Store) ReadStream(ctx context.Context, stream string, dir domain.Direction, from uint64, limit int) ([]domain.RecordedEvent, error) {
	raw, err := s.readStream(ctx, stream, dir, from, limit)
	if err != nil {
		return nil, fmt.Errorf("kurrentdb: read %s: %w", stream, err)
	}
	out := make([]domain.RecordedEvent, len(raw))
	for i, r := range raw {
		if out[i], err = decode(r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ReadAll implements domain.EventStore. The server reads $all from a
// position inclusively and cannot filter a read, so the event at after and
// events outside the log are skipped here.
func (s *Store) ReadAll(ctx context.Context, after domain.Position, limit int) ([]domain.RecordedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []domain.RecordedEvent
	last := after
	err := s.scanAll(ctx, "read $all after "+after.String(), esdb.Forwards, allPosition(after), func(r *esdb.RecordedEvent) (bool, error) {
		pos := domain.Position{Commit: r.Position.Commit, Prepare: r.Position.Prepare}
		if !last.Less(pos) {
			return false, nil
		}
		last = pos
		if !s.inLog(r.StreamID) {
			return false, nil
		}
		e, err := decode(r)
		if err != nil {
			return true, err
		}
		out = append(out, e)
		return limit > 0 && len(out) == limit, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Tail is the position of the last event of the log (domain.Start when
// there is none), read backwards from the end of $all: where a follower of
// new events only starts.
func (s *Store) Tail(ctx context.Context) (domain.Position, error) {
	tail := domain.Start
	err := s.scanAll(ctx, "tail", esdb.Backwards, esdb.End{}, func(r *esdb.RecordedEvent) (bool, error) {
		if !s.inLog(r.StreamID) {
			return false, nil
		}
		tail = domain.Position{Commit: r.Position.Commit, Prepare: r.Position.Prepare}
		return true, nil
	})
	if err != nil {
		return domain.Start, err
	}
	return tail, nil
}

// scanAll reads $all page by page in dir from from, handing every event to
// visit until visit is done (or fails) or $all ends. Each page starts at
// the last event of the one before; forwards that event comes again, so a
// visitor skips what it has seen.
func (s *Store) scanAll(ctx context.Context, what string, dir esdb.Direction, from esdb.AllPosition, visit func(*esdb.RecordedEvent) (done bool, err error)) error {
	for {
		c, err := s.current()
		if err != nil {
			return err
		}
		rs, err := c.ReadAll(ctx, esdb.ReadAllOptions{Direction: dir, From: from}, readAllPage)
		if err != nil {
			return fmt.Errorf("kurrentdb: %s: %w", what, s.classify(ctx, c, err))
		}
		n := 0
		for {
			ev, err := rs.Recv()
			if isEOF(err) {
				break
			}
			if err != nil {
				rs.Close()
				return fmt.Errorf("kurrentdb: %s: %w", what, s.classify(ctx, c, err))
			}
			n++
			if done, err := visit(ev.Event); done || err != nil {
				rs.Close()
				return err
			}
			from = ev.Event.Position
		}
		rs.Close()
		if n < readAllPage {
			return nil
		}
	}
}

// allPosition is where a read of $all that must see every event after p
// starts: from the beginning for Start, else at p itself (inclusive).
func allPosition(p domain.Position) esdb.AllPosition {
	if p == domain.Start {
		return esdb.Start{}
	}
	return esdb.Position{Commit: p.Commit, Prepare: p.Prepare}
}

// SubscribeAll implements domain.EventStore with a catch-up subscription to
// $all, filtered on the server to the log's stream prefixes. When the
// server goes away it subscribes again from the last event it delivered.
func (s *Store) SubscribeAll(ctx context.Context, after domain.Position, handle func(context.Context, domain.RecordedEvent) error) error {
	last := after
	for {
		err := s.subscribeOnce(ctx, &last, handle)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var he handlerError
		if errors.As(err, &he) {
			return he.err
		}
		if !errors.Is(err, domain.ErrStoreUnavailable) {
			return err
		}
		s.log.Warn("kurrentdb: subscription to $all lost; resuming", "after", last.String(), "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.retry):
		}
	}
}

// handlerError carries the handler's error out of subscribeOnce unchanged.
type handlerError struct{ err error }

func (h handlerError) Error() string { return h.err.Error() }

func (s *Store) subscribeOnce(ctx context.Context, last *domain.Position, handle func(context.Context, domain.RecordedEvent) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c, err := s.current()
	if err != nil {
		return err
	}
	var from esdb.AllPosition = esdb.Start{}
	if *last != domain.Start {
		// A subscription from a position starts after it.
		from = esdb.Position{Commit: last.Commit, Prepare: last.Prepare}
	}
	sub, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{
		From:   from,
		Filter: &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: s.prefixes},
	})
	if err != nil {
		return fmt.Errorf("kurrentdb: subscribe to $all after %s: %w", *last, s.classify(ctx, c, err))
	}
	defer sub.Close()
	for {
		ev := sub.Recv()
		switch {
		case ev.SubscriptionDropped != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("kurrentdb: subscription to $all dropped after %s: %w", *last, s.dropped(ctx, c, ev.SubscriptionDropped.Error))
		case ev.EventAppeared != nil:
			r := ev.EventAppeared.Event
			pos := domain.Position{Commit: r.Position.Commit, Prepare: r.Position.Prepare}
			// The server filters on prefixes; this keeps the guarantee
			// even if it sent more, and never delivers an event twice.
			if !last.Less(pos) || !s.inLog(r.StreamID) {
				continue
			}
			e, err := decode(r)
			if err != nil {
				return err
			}
			if err := handle(ctx, e); err != nil {
				return handlerError{err}
			}
			*last = pos
		}
	}
}

// dropped classifies why a subscription ended. The client hands over the raw
// gRPC error, without the mapping its other calls do.
func (s *Store) dropped(ctx context.Context, c *esdb.Client, err error) error {
	if err == nil {
		return fmt.Errorf("%w: subscription ended", domain.ErrStoreUnavailable)
	}
	return s.classify(ctx, c, err)
}
