package domain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Errors every event store adapter returns, so the service and the HTTP layer
// can react to them without knowing which store is behind the port.
var (
	// ErrConcurrencyConflict: the stream is not at the expected revision.
	ErrConcurrencyConflict = errors.New("concurrency conflict")
	// ErrStreamNotFound: a stream was read that has no events.
	ErrStreamNotFound = errors.New("stream not found")
	// ErrStreamDeleted: the stream existed and was deleted (stores that can delete).
	ErrStreamDeleted = errors.New("stream deleted")
	// ErrDuplicateEventID: an event id that is already stored was appended in a
	// way that is not an exact retry of the original append.
	ErrDuplicateEventID = errors.New("duplicate event id")
	// ErrStoreUnavailable: the store cannot be reached.
	ErrStoreUnavailable = errors.New("event store unavailable")
)

// ConflictError details an ErrConcurrencyConflict.
type ConflictError struct {
	Stream   string
	Expected ExpectedRevision
	// Actual is the stream's last revision; ActualExists is false when the
	// stream has no events.
	Actual       uint64
	ActualExists bool
}

func (e *ConflictError) Error() string {
	actual := "no stream"
	if e.ActualExists {
		actual = fmt.Sprintf("revision %d", e.Actual)
	}
	return fmt.Sprintf("%s: stream %s expected %s, is at %s", ErrConcurrencyConflict, e.Stream, e.Expected, actual)
}

func (e *ConflictError) Unwrap() error { return ErrConcurrencyConflict }

type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectStreamExists
	expectExact
)

// ExpectedRevision is the optimistic-concurrency condition of an append.
// Revisions count from 0: the first event of a stream has revision 0.
type ExpectedRevision struct {
	kind expectKind
	rev  uint64
}

var (
	// ExpectAny appends whatever state the stream is in.
	ExpectAny = ExpectedRevision{kind: expectAny}
	// ExpectNoStream appends only when the stream has no events.
	ExpectNoStream = ExpectedRevision{kind: expectNoStream}
	// ExpectStreamExists appends only when the stream has at least one event.
	ExpectStreamExists = ExpectedRevision{kind: expectStreamExists}
)

// ExpectRevision appends only when the stream's last revision is rev.
func ExpectRevision(rev uint64) ExpectedRevision {
	return ExpectedRevision{kind: expectExact, rev: rev}
}

// IsAny, IsNoStream, IsStreamExists and Exact let adapters map the condition
// onto their own mechanism.
func (e ExpectedRevision) IsAny() bool          { return e.kind == expectAny }
func (e ExpectedRevision) IsNoStream() bool     { return e.kind == expectNoStream }
func (e ExpectedRevision) IsStreamExists() bool { return e.kind == expectStreamExists }
func (e ExpectedRevision) Exact() (uint64, bool) {
	return e.rev, e.kind == expectExact
}

// Allows reports whether a stream whose last revision is last (exists=false
// when it has no events) satisfies the condition. Stores that check the
// condition themselves call it so every adapter agrees on the rules.
func (e ExpectedRevision) Allows(last uint64, exists bool) bool {
	switch e.kind {
	case expectNoStream:
		return !exists
	case expectStreamExists:
		return exists
	case expectExact:
		return exists && last == e.rev
	default:
		return true
	}
}

func (e ExpectedRevision) String() string {
	switch e.kind {
	case expectNoStream:
		return "no stream"
	case expectStreamExists:
		return "stream exists"
	case expectExact:
		return fmt.Sprintf("revision %d", e.rev)
	default:
		return "any"
	}
}

// Position is an event's place in the global log. Stores whose order is a
// single counter (SQLite) set Commit and Prepare to the same value; stores
// that order by commit (PostgreSQL transaction ids, KurrentDB) use both.
type Position struct {
	Commit  uint64 `json:"commit"`
	Prepare uint64 `json:"prepare"`
}

// Start is the position before the first event.
var Start = Position{}

// Less orders positions in the global log.
func (p Position) Less(o Position) bool {
	if p.Commit != o.Commit {
		return p.Commit < o.Commit
	}
	return p.Prepare < o.Prepare
}

func (p Position) String() string {
	if p.Commit == p.Prepare {
		return fmt.Sprintf("%d", p.Commit)
	}
	return fmt.Sprintf("%d/%d", p.Commit, p.Prepare)
}

// ActorKind says who caused an event.
type ActorKind string

const (
	ActorOperator ActorKind = "operator"
	ActorAPIKey   ActorKind = "api-key"
	ActorSystem   ActorKind = "system"
	ActorCustomer ActorKind = "customer"
)

// Actor is the authenticated caller recorded on every event.
type Actor struct {
	Kind    ActorKind `json:"kind"`
	ID      string    `json:"id"`
	Company string    `json:"company"`
}

// EventData is an event as it is appended: the envelope fields the caller
// decides, and the payload split into its ordinary and personal parts so the
// personal part can later be encrypted per customer and shredded.
type EventData struct {
	ID             uuid.UUID       `json:"id"`
	Type           string          `json:"type"`
	SchemaVersion  int             `json:"schema_version"`
	OccurredAt     time.Time       `json:"occurred_at"`
	Actor          Actor           `json:"actor"`
	CorrelationID  string          `json:"correlation_id,omitempty"`
	CausationID    string          `json:"causation_id,omitempty"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	Data           json.RawMessage `json:"data"`
	Personal       json.RawMessage `json:"personal,omitempty"`
}

// RecordedEvent is an event as the store holds it: EventData plus what the
// store assigns at append time.
type RecordedEvent struct {
	EventData
	Stream     string    `json:"stream"`
	Revision   uint64    `json:"revision"`
	Position   Position  `json:"position"`
	RecordedAt time.Time `json:"recorded_at"`
	// PrevHash and Hash chain the event to the one before it in its stream
	// (see ChainHash); PrevHash of a stream's first event is empty.
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// AppendResult says where an append put its last event.
type AppendResult struct {
	// LastRevision is the revision of the last event appended (or of the last
	// event of the original append when the call was an idempotent retry).
	LastRevision uint64
	Position     Position
	// Recorded holds the appended events as stored, for stores that know
	// them without another read; nil otherwise (and for idempotent retries).
	// Callers must not change them.
	Recorded []RecordedEvent
}

// Direction of a stream read.
type Direction uint8

const (
	Forwards Direction = iota
	Backwards
)

// StreamEnd as the From of a backwards read starts at the last event.
const StreamEnd = ^uint64(0)

// EventStore is the port every event store adapter implements. The shared
// conformance suite (adapters/eventstore/storetest) is its definition.
type EventStore interface {
	// Append writes events to the end of stream if the stream satisfies
	// expected, atomically and durably. Re-appending events whose ids are
	// already stored, in the same stream and order, writes nothing and
	// returns the original result, whatever expected says.
	Append(ctx context.Context, stream string, expected ExpectedRevision, events []EventData) (AppendResult, error)
	// ReadStream reads up to limit events (limit <= 0: all) starting at
	// revision from, in direction. A stream with no events is ErrStreamNotFound.
	ReadStream(ctx context.Context, stream string, dir Direction, from uint64, limit int) ([]RecordedEvent, error)
	// ReadAll reads up to limit events of the global log that come after
	// position after, in global order.
	ReadAll(ctx context.Context, after Position, limit int) ([]RecordedEvent, error)
	// SubscribeAll calls handle for every event after position after, in global
	// order and exactly once: first those already stored, then each new one as
	// it is committed. It returns when ctx ends or handle returns an error.
	SubscribeAll(ctx context.Context, after Position, handle func(context.Context, RecordedEvent) error) error
}

// CheckAppend refuses what no store can write: an empty stream name, no
// events, an event without an id or a type, or one id twice in the batch
// (ErrDuplicateEventID). Every adapter calls it first, so they all refuse
// the same appends the same way.
func CheckAppend(stream string, events []EventData) error {
	if stream == "" {
		return errors.New("append: empty stream name")
	}
	if len(events) == 0 {
		return fmt.Errorf("append to %s: no events", stream)
	}
	for i, e := range events {
		switch {
		case e.ID == uuid.Nil:
			return fmt.Errorf("append to %s: event %d has no id", stream, i)
		case e.Type == "":
			return fmt.Errorf("append to %s: event %s has no type", stream, e.ID)
		}
		// Batches are small; a quadratic scan beats a map here.
		for _, f := range events[:i] {
			if f.ID == e.ID {
				return fmt.Errorf("append to %s: event %s appears twice: %w", stream, e.ID, ErrDuplicateEventID)
			}
		}
	}
	return nil
}
