// Package memory is an event store held in memory. It passes the shared
// conformance suite and serves tests that need a fast, correct store; it
// keeps nothing across restarts.
package memory

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/kycengine/kyc/domain"
)

// Store is an in-memory domain.EventStore.
type Store struct {
	mu      sync.RWMutex
	log     []domain.RecordedEvent
	streams map[string][]int // stream -> indexes into log
	byID    map[uuid.UUID]int
	byKey   map[string][]int
	changed chan struct{} // closed and replaced on every append
	clock   func() time.Time
}

// New returns an empty store.
func New() *Store {
	return &Store{
		streams: map[string][]int{}, byID: map[uuid.UUID]int{}, byKey: map[string][]int{},
		changed: make(chan struct{}), clock: time.Now,
	}
}

// Append implements domain.EventStore.
func (s *Store) Append(ctx context.Context, stream string, expected domain.ExpectedRevision, events []domain.EventData) (domain.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return domain.AppendResult{}, err
	}
	if stream == "" || len(events) == 0 {
		return domain.AppendResult{}, fmt.Errorf("append: stream name and at least one event are required")
	}
	seen := make(map[uuid.UUID]bool, len(events))
	for _, e := range events {
		if seen[e.ID] {
			return domain.AppendResult{}, fmt.Errorf("%w: %s appears twice in one append", domain.ErrDuplicateEventID, e.ID)
		}
		seen[e.ID] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if res, done, err := s.retried(stream, events); done || err != nil {
		return res, err
	}
	idx := s.streams[stream]
	last, exists := uint64(0), len(idx) > 0
	prev := ""
	if exists {
		e := s.log[idx[len(idx)-1]]
		last, prev = e.Revision, e.Hash
	}
	if !expected.Allows(last, exists) {
		return domain.AppendResult{}, &domain.ConflictError{Stream: stream, Expected: expected, Actual: last, ActualExists: exists}
	}
	next := uint64(0)
	if exists {
		next = last + 1
	}
	now := s.clock().UTC()
	for i, e := range events {
		rev := next + uint64(i)
		r := domain.RecordedEvent{
			EventData: e, Stream: stream, Revision: rev,
			Position:   domain.Position{Commit: uint64(len(s.log) + 1), Prepare: uint64(len(s.log) + 1)},
			RecordedAt: now, PrevHash: prev, Hash: domain.ChainHash(prev, stream, rev, e),
		}
		r.Data, r.Personal = slices.Clone(e.Data), slices.Clone(e.Personal)
		prev = r.Hash
		s.byID[e.ID] = len(s.log)
		s.streams[stream] = append(s.streams[stream], len(s.log))
		if e.IdempotencyKey != "" {
			s.byKey[e.IdempotencyKey] = append(s.byKey[e.IdempotencyKey], len(s.log))
		}
		s.log = append(s.log, r)
	}
	close(s.changed)
	s.changed = make(chan struct{})
	lastEvent := s.log[len(s.log)-1]
	return domain.AppendResult{LastRevision: lastEvent.Revision, Position: lastEvent.Position,
		Recorded: slices.Clone(s.log[len(s.log)-len(events):])}, nil
}

// retried recognises an exact retry of an earlier append.
func (s *Store) retried(stream string, events []domain.EventData) (domain.AppendResult, bool, error) {
	found := 0
	for _, e := range events {
		if _, ok := s.byID[e.ID]; ok {
			found++
		}
	}
	if found == 0 {
		return domain.AppendResult{}, false, nil
	}
	first := s.byID[events[0].ID]
	exact := found == len(events)
	for i, e := range events {
		j, ok := s.byID[e.ID]
		if !ok || j >= len(s.log) || s.log[j].Stream != stream || (i > 0 && s.log[j].Revision != s.log[first].Revision+uint64(i)) {
			exact = false
		}
	}
	if !exact {
		return domain.AppendResult{}, false, fmt.Errorf("%w: stream %s", domain.ErrDuplicateEventID, stream)
	}
	last := s.log[s.byID[events[len(events)-1].ID]]
	return domain.AppendResult{LastRevision: last.Revision, Position: last.Position}, true, nil
}

// ReadStream implements domain.EventStore.
func (s *Store) ReadStream(ctx context.Context, stream string, dir domain.Direction, from uint64, limit int) ([]domain.RecordedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	idx := s.streams[stream]
	if len(idx) == 0 {
		return nil, fmt.Errorf("%w: %s", domain.ErrStreamNotFound, stream)
	}
	var out []domain.RecordedEvent
	add := func(i int) bool {
		out = append(out, s.log[idx[i]])
		return limit > 0 && len(out) >= limit
	}
	if dir == domain.Forwards {
		for i := int(min(from, uint64(len(idx)))); i < len(idx); i++ {
			if add(i) {
				break
			}
		}
	} else {
		start := len(idx) - 1
		if from < uint64(len(idx)) {
			start = int(from)
		}
		for i := start; i >= 0; i-- {
			if add(i) {
				break
			}
		}
	}
	return out, nil
}

// ReadAll implements domain.EventStore.
func (s *Store) ReadAll(ctx context.Context, after domain.Position, limit int) ([]domain.RecordedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	start := int(min(after.Commit, uint64(len(s.log))))
	end := len(s.log)
	if limit > 0 && start+limit < end {
		end = start + limit
	}
	return slices.Clone(s.log[start:end]), nil
}

// SubscribeAll implements domain.EventStore.
func (s *Store) SubscribeAll(ctx context.Context, after domain.Position, handle func(context.Context, domain.RecordedEvent) error) error {
	for {
		s.mu.RLock()
		changed := s.changed
		s.mu.RUnlock()
		page, err := s.ReadAll(ctx, after, 256)
		if err != nil {
			return err
		}
		for _, e := range page {
			if err := handle(ctx, e); err != nil {
				return err
			}
			after = e.Position
		}
		if len(page) == 256 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// FindByIdempotencyKey implements domain.IdempotencyIndex.
func (s *Store) FindByIdempotencyKey(ctx context.Context, key string) ([]domain.RecordedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []domain.RecordedEvent
	for _, i := range s.byKey[key] {
		out = append(out, s.log[i])
	}
	return out, nil
}
