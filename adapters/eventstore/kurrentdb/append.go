package kurrentdb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/kycengine/kyc/domain"
)

// Types of the bookkeeping events.
const (
	claimType = "kyc.event-id-claimed"
	keyType   = "kyc.idempotency-key-used"
)

// head is what Append needs to know of a stream: its last revision and hash,
// and where each of its events is, to recognise retries and duplicates.
type head struct {
	exists   bool
	last     uint64
	lastHash string
	byID     map[uuid.UUID]stored
}

type stored struct {
	revision uint64
	position domain.Position
}

// Append implements domain.EventStore; the package comment says how.
func (s *Store) Append(ctx context.Context, stream string, expected domain.ExpectedRevision, events []domain.EventData) (domain.AppendResult, error) {
	if err := s.validateAppend(stream, events); err != nil {
		return domain.AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return domain.AppendResult{}, err
	}
	claimed := false
	for attempt := 1; ; attempt++ {
		h, err := s.head(ctx, stream)
		if err != nil {
			return domain.AppendResult{}, fmt.Errorf("kurrentdb: append to %s: %w", stream, err)
		}
		if res, found, err := retryResult(stream, h, events); found {
			return res, err
		}
		if !expected.Allows(h.last, h.exists) {
			return domain.AppendResult{}, &domain.ConflictError{Stream: stream, Expected: expected, Actual: h.last, ActualExists: h.exists}
		}
		if !claimed {
			if err := s.claim(ctx, stream, events); err != nil {
				return domain.AppendResult{}, err
			}
			claimed = true
		}
		data, err := chained(stream, h, events)
		if err != nil {
			return domain.AppendResult{}, err
		}
		c, err := s.current()
		if err != nil {
			return domain.AppendResult{}, err
		}
		if s.hook != nil {
			s.hook(stream)
		}
		var exp esdb.ExpectedRevision = esdb.NoStream{}
		if h.exists {
			exp = esdb.Revision(h.last)
		}
		wr, err := c.AppendToStream(ctx, stream, esdb.AppendToStreamOptions{ExpectedRevision: exp}, data...)
		if err == nil {
			return domain.AppendResult{
				LastRevision: wr.NextExpectedVersion,
				Position:     domain.Position{Commit: wr.CommitPosition, Prepare: wr.PreparePosition},
			}, nil
		}
		if wrongVersion(err) && attempt < s.attempts {
			// Another writer moved the stream since it was read: read it
			// again; the caller's expectation is checked against the new head.
			continue
		}
		if wrongVersion(err) {
			return domain.AppendResult{}, fmt.Errorf("kurrentdb: append to %s: the stream kept moving in %d attempts: %w", stream, attempt,
				&domain.ConflictError{Stream: stream, Expected: expected, Actual: h.last, ActualExists: h.exists})
		}
		return domain.AppendResult{}, fmt.Errorf("kurrentdb: append to %s: %w", stream, s.classify(ctx, c, err))
	}
}

func wrongVersion(err error) bool {
	var esErr *esdb.Error
	return errors.As(err, &esErr) && esErr.Code() == esdb.ErrorCodeWrongExpectedVersion
}

func (s *Store) validateAppend(stream string, events []domain.EventData) error {
	if err := domain.CheckAppend(stream, events); err != nil {
		return fmt.Errorf("kurrentdb: %w", err)
	}
	if !s.inLog(stream) {
		// Its events would never reach ReadAll or a subscription.
		return fmt.Errorf("kurrentdb: append to %s: the stream is outside the log (prefixes %q)", stream, s.prefixes)
	}
	return nil
}

// head reads a whole stream. Customer streams stay short (tens of events),
// and the command that appends has just read the stream to decide anyway.
func (s *Store) head(ctx context.Context, stream string) (head, error) {
	raw, err := s.readStream(ctx, stream, domain.Forwards, 0, 0)
	if errors.Is(err, domain.ErrStreamNotFound) {
		return head{}, nil
	}
	if err != nil {
		return head{}, err
	}
	if len(raw) == 0 {
		return head{}, nil
	}
	h := head{exists: true, byID: make(map[uuid.UUID]stored, len(raw))}
	for _, r := range raw {
		h.byID[r.EventID] = stored{revision: r.EventNumber, position: domain.Position{Commit: r.Position.Commit, Prepare: r.Position.Prepare}}
	}
	last, err := decode(raw[len(raw)-1])
	if err != nil {
		return head{}, err
	}
	h.last, h.lastHash = last.Revision, last.Hash
	return h, nil
}

// retryResult answers an append whose events are already in the stream:
// with the original result when they are all there in the order given,
// with ErrDuplicateEventID when only some are or in another order.
func retryResult(stream string, h head, events []domain.EventData) (domain.AppendResult, bool, error) {
	var res domain.AppendResult
	var first uint64
	found := 0
	for i, e := range events {
		st, ok := h.byID[e.ID]
		if !ok {
			continue
		}
		found++
		if found != i+1 {
			return res, true, fmt.Errorf("kurrentdb: append to %s: event %s is stored but an event before it is not: %w", stream, e.ID, domain.ErrDuplicateEventID)
		}
		if i == 0 {
			first = st.revision
		} else if st.revision != first+uint64(i) {
			return res, true, fmt.Errorf("kurrentdb: append to %s: event %s is stored at revision %d, not in the order given: %w",
				stream, e.ID, st.revision, domain.ErrDuplicateEventID)
		}
		res = domain.AppendResult{LastRevision: st.revision, Position: st.position}
	}
	switch {
	case found == 0:
		return res, false, nil
	case found < len(events):
		return res, true, fmt.Errorf("kurrentdb: append to %s: event %s is not stored but others of the append are: %w",
			stream, events[found].ID, domain.ErrDuplicateEventID)
	}
	return res, true, nil
}

// chained encodes the events with their chain hashes, continuing from the
// head that was read.
func chained(stream string, h head, events []domain.EventData) ([]esdb.EventData, error) {
	out := make([]esdb.EventData, len(events))
	prev := h.lastHash
	rev := uint64(0)
	if h.exists {
		rev = h.last + 1
	}
	for i, e := range events {
		hash := domain.ChainHash(prev, stream, rev+uint64(i), e)
		d, err := encode(e, prev, hash)
		if err != nil {
			return nil, err
		}
		out[i] = d
		prev = hash
	}
	return out, nil
}

type claimData struct {
	Stream string `json:"stream"`
}

// claim makes sure no other stream holds or has claimed the events' ids,
// and claims them for stream. A claim for the same stream is an earlier
// attempt of this append and is fine.
func (s *Store) claim(ctx context.Context, stream string, events []domain.EventData) error {
	body, err := json.Marshal(claimData{Stream: stream})
	if err != nil {
		return err
	}
	for _, e := range events {
		name := claimPrefix + e.ID.String()
		c, err := s.current()
		if err != nil {
			return err
		}
		_, err = c.AppendToStream(ctx, name, esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}},
			esdb.EventData{EventID: uuid.New(), EventType: claimType, ContentType: esdb.ContentTypeJson, Data: body})
		if err == nil {
			continue
		}
		if !wrongVersion(err) {
			return fmt.Errorf("kurrentdb: append to %s: claim event id %s: %w", stream, e.ID, s.classify(ctx, c, err))
		}
		raw, err := s.readStream(ctx, name, domain.Forwards, 0, 1)
		if err != nil {
			return fmt.Errorf("kurrentdb: append to %s: read the claim of event id %s: %w", stream, e.ID, err)
		}
		var got claimData
		if len(raw) == 1 {
			_ = json.Unmarshal(raw[0].Data, &got)
		}
		if got.Stream != stream {
			return fmt.Errorf("kurrentdb: append to %s: event id %s belongs to stream %s: %w", stream, e.ID, got.Stream, domain.ErrDuplicateEventID)
		}
	}
	return s.recordKeys(ctx, stream, events)
}

type keyUse struct {
	Stream string      `json:"stream"`
	IDs    []uuid.UUID `json:"ids"`
}

func keyStream(key string) string {
	sum := sha256.Sum256([]byte(key))
	return keyPrefix + hex.EncodeToString(sum[:])
}

// recordKeys notes, under each idempotency key the events carry, which
// event ids this append brings to which stream.
func (s *Store) recordKeys(ctx context.Context, stream string, events []domain.EventData) error {
	byKey := map[string][]uuid.UUID{}
	var keys []string
	for _, e := range events {
		if e.IdempotencyKey == "" {
			continue
		}
		if _, ok := byKey[e.IdempotencyKey]; !ok {
			keys = append(keys, e.IdempotencyKey)
		}
		byKey[e.IdempotencyKey] = append(byKey[e.IdempotencyKey], e.ID)
	}
	for _, key := range keys {
		body, err := json.Marshal(keyUse{Stream: stream, IDs: byKey[key]})
		if err != nil {
			return err
		}
		c, err := s.current()
		if err != nil {
			return err
		}
		if _, err := c.AppendToStream(ctx, keyStream(key), esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}},
			esdb.EventData{EventID: uuid.New(), EventType: keyType, ContentType: esdb.ContentTypeJson, Data: body}); err != nil {
			return fmt.Errorf("kurrentdb: append to %s: record idempotency key: %w", stream, s.classify(ctx, c, err))
		}
	}
	return nil
}

// FindByIdempotencyKey implements domain.IdempotencyIndex: the stored events
// of every append that carried key, in the order the appends were made.
func (s *Store) FindByIdempotencyKey(ctx context.Context, key string) ([]domain.RecordedEvent, error) {
	uses, err := s.readStream(ctx, keyStream(key), domain.Forwards, 0, 0)
	if errors.Is(err, domain.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kurrentdb: idempotency key lookup: %w", err)
	}
	var out []domain.RecordedEvent
	streams := map[string][]domain.RecordedEvent{}
	seen := map[uuid.UUID]bool{}
	for _, u := range uses {
		var use keyUse
		if err := json.Unmarshal(u.Data, &use); err != nil {
			return nil, fmt.Errorf("kurrentdb: idempotency key lookup: %s@%d: %w", u.StreamID, u.EventNumber, err)
		}
		events, ok := streams[use.Stream]
		if !ok {
			events, err = s.ReadStream(ctx, use.Stream, domain.Forwards, 0, 0)
			if err != nil && !errors.Is(err, domain.ErrStreamNotFound) {
				return nil, fmt.Errorf("kurrentdb: idempotency key lookup: %w", err)
			}
			streams[use.Stream] = events
		}
		want := make(map[uuid.UUID]bool, len(use.IDs))
		for _, id := range use.IDs {
			want[id] = true
		}
		// Ids of an append that failed after it was noted are not in the
		// stream and are simply not found.
		for _, e := range events {
			if want[e.ID] && !seen[e.ID] && e.IdempotencyKey == key {
				seen[e.ID] = true
				out = append(out, e)
			}
		}
	}
	return out, nil
}
