package kurrentdb

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/kycengine/kyc/domain"
)

// envelopeFormat versions the metadata document, so a later layout can be
// told apart from this one when it is read back.
const envelopeFormat = 1

// envelope is an event's custom metadata: everything of domain.EventData
// that KurrentDB has no field for, and the chain hashes. Personal is the
// personal part's bytes as a string, not embedded JSON: encoding/json would
// re-format embedded JSON, and the hash covers the exact bytes.
type envelope struct {
	Format         int          `json:"kyc"`
	SchemaVersion  int          `json:"schema_version"`
	OccurredAt     time.Time    `json:"occurred_at"`
	Actor          domain.Actor `json:"actor"`
	CorrelationID  string       `json:"correlation_id,omitempty"`
	CausationID    string       `json:"causation_id,omitempty"`
	IdempotencyKey string       `json:"idempotency_key,omitempty"`
	Personal       *string      `json:"personal,omitempty"`
	PrevHash       string       `json:"prev_hash"`
	Hash           string       `json:"hash"`
}

// ErrForeignEvent: an event in a log stream was not written by this store
// (its metadata is not an envelope), so it cannot be turned into a domain
// event.
var ErrForeignEvent = errors.New("kurrentdb: event without a kyc envelope")

func encode(e domain.EventData, prevHash, hash string) (esdb.EventData, error) {
	env := envelope{
		Format: envelopeFormat, SchemaVersion: e.SchemaVersion, OccurredAt: e.OccurredAt, Actor: e.Actor,
		CorrelationID: e.CorrelationID, CausationID: e.CausationID, IdempotencyKey: e.IdempotencyKey,
		PrevHash: prevHash, Hash: hash,
	}
	if e.Personal != nil {
		p := string(e.Personal)
		env.Personal = &p
	}
	meta, err := json.Marshal(env)
	if err != nil {
		return esdb.EventData{}, fmt.Errorf("kurrentdb: encode envelope of event %s: %w", e.ID, err)
	}
	data := []byte(e.Data)
	if data == nil {
		data = []byte{}
	}
	return esdb.EventData{EventID: e.ID, EventType: e.Type, ContentType: esdb.ContentTypeJson, Data: data, Metadata: meta}, nil
}

func decode(r *esdb.RecordedEvent) (domain.RecordedEvent, error) {
	var env envelope
	if err := json.Unmarshal(r.UserMetadata, &env); err != nil || env.Format == 0 {
		return domain.RecordedEvent{}, fmt.Errorf("%w: %s@%d (%s)", ErrForeignEvent, r.StreamID, r.EventNumber, r.EventID)
	}
	if env.Format > envelopeFormat {
		return domain.RecordedEvent{}, fmt.Errorf("kurrentdb: event %s@%d has envelope format %d; this binary knows up to %d",
			r.StreamID, r.EventNumber, env.Format, envelopeFormat)
	}
	e := domain.RecordedEvent{
		EventData: domain.EventData{
			ID: r.EventID, Type: r.EventType, SchemaVersion: env.SchemaVersion, OccurredAt: env.OccurredAt,
			Actor: env.Actor, CorrelationID: env.CorrelationID, CausationID: env.CausationID,
			IdempotencyKey: env.IdempotencyKey, Data: json.RawMessage(r.Data),
		},
		Stream:     r.StreamID,
		Revision:   r.EventNumber,
		Position:   domain.Position{Commit: r.Position.Commit, Prepare: r.Position.Prepare},
		RecordedAt: r.CreatedDate,
		PrevHash:   env.PrevHash,
		Hash:       env.Hash,
	}
	if env.Personal != nil {
		e.Personal = json.RawMessage(*env.Personal)
	}
	return e, nil
}
