// Package cloudevent is the one mapping between a stored event and the
// message the relay publishes: CloudEvents attributes in the Watermill
// metadata (binary content mode, `ce_` prefix), the event's data part as
// the payload. Consumers (kyc subscribe, webhooks) turn a message back into
// a CloudEvent with the official SDK, so what they print or post is a
// CloudEvent any CloudEvents library reads.
//
// The personal part of an event is never published: it is what the log
// crypto-shreds, and a copy in every downstream system could not be.
package cloudevent

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/kycengine/kyc/domain"
)

// Metadata keys. The ce_ ones are the CloudEvents attributes; the kyc_ ones
// say where the event is in the log; partition_key keeps one customer's
// events in order on transports that partition.
const (
	KeySpecVersion     = "ce_specversion"
	KeyID              = "ce_id"
	KeyType            = "ce_type"
	KeySource          = "ce_source"
	KeySubject         = "ce_subject"
	KeyTime            = "ce_time"
	KeyDataSchema      = "ce_dataschema"
	KeyDataContentType = "ce_datacontenttype"
	KeyStream          = "kyc_stream"
	KeyRevision        = "kyc_revision"
	KeyPosition        = "kyc_position"
	KeyPartition       = "partition_key"
)

// TypePrefix prefixes the domain event type in ce_type, so the engine's
// events are told apart from others on a shared bus.
const TypePrefix = "kyc.customer."

// DefaultSource is ce_source when the deployment names none.
const DefaultSource = "/kyc"

// ErrNotAnEvent: a message lacks the attributes of a published event.
var ErrNotAnEvent = errors.New("message is not a kyc event")

// Type is the ce_type of a domain event type.
func Type(eventType string) string { return TypePrefix + eventType }

// DataSchema names the JSON Schema of an event's data: the file
// schemas/events/<Type>.v<version>.json of the engine that wrote it.
func DataSchema(eventType string, version int) string {
	return fmt.Sprintf("urn:kyc:schema:events:%s.v%d", eventType, version)
}

// ToMessage is the message the relay publishes for a stored event; its
// UUID is the event id, so consumers deduplicate on it.
func ToMessage(e domain.RecordedEvent, source string) *message.Message {
	if source == "" {
		source = DefaultSource
	}
	m := message.NewMessage(e.ID.String(), []byte(e.Data))
	customer, ok := domain.CustomerIDFromStream(e.Stream)
	if !ok {
		customer = e.Stream
	}
	m.Metadata = message.Metadata{
		KeySpecVersion:     cloudevents.CloudEventsVersionV1,
		KeyID:              e.ID.String(),
		KeyType:            Type(e.Type),
		KeySource:          source,
		KeySubject:         customer,
		KeyTime:            e.OccurredAt.UTC().Format(time.RFC3339Nano),
		KeyDataSchema:      DataSchema(e.Type, e.SchemaVersion),
		KeyDataContentType: cloudevents.ApplicationJSON,
		KeyStream:          e.Stream,
		KeyRevision:        strconv.FormatUint(e.Revision, 10),
		KeyPosition:        FormatPosition(e.Position),
		KeyPartition:       customer,
	}
	return m
}

// FormatPosition writes a log position as "commit/prepare".
func FormatPosition(p domain.Position) string {
	return strconv.FormatUint(p.Commit, 10) + "/" + strconv.FormatUint(p.Prepare, 10)
}

// ParsePosition reads what FormatPosition wrote.
func ParsePosition(s string) (domain.Position, error) {
	c, p, ok := strings.Cut(s, "/")
	if !ok {
		return domain.Position{}, fmt.Errorf("position %q: want commit/prepare", s)
	}
	commit, err := strconv.ParseUint(c, 10, 64)
	if err != nil {
		return domain.Position{}, fmt.Errorf("position %q: %w", s, err)
	}
	prepare, err := strconv.ParseUint(p, 10, 64)
	if err != nil {
		return domain.Position{}, fmt.Errorf("position %q: %w", s, err)
	}
	return domain.Position{Commit: commit, Prepare: prepare}, nil
}

// FromMessage turns a published message back into a CloudEvent, with the
// log coordinates as extensions (kycstream, kycrevision, kycposition).
func FromMessage(m *message.Message) (cloudevents.Event, error) {
	md := m.Metadata
	if md.Get(KeySpecVersion) == "" || md.Get(KeyID) == "" || md.Get(KeyType) == "" {
		return cloudevents.Event{}, fmt.Errorf("%w: message %s has no CloudEvents attributes", ErrNotAnEvent, m.UUID)
	}
	if v := md.Get(KeySpecVersion); v != cloudevents.CloudEventsVersionV1 {
		// The SDK has no context for other versions (and panics without one).
		return cloudevents.Event{}, fmt.Errorf("%w: message %s has CloudEvents version %q, want %s", ErrNotAnEvent, m.UUID, v, cloudevents.CloudEventsVersionV1)
	}
	ev := cloudevents.New(cloudevents.CloudEventsVersionV1)
	ev.SetID(md.Get(KeyID))
	ev.SetType(md.Get(KeyType))
	ev.SetSource(md.Get(KeySource))
	ev.SetSubject(md.Get(KeySubject))
	if t := md.Get(KeyTime); t != "" {
		at, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			return cloudevents.Event{}, fmt.Errorf("%w: message %s: ce_time: %w", ErrNotAnEvent, m.UUID, err)
		}
		ev.SetTime(at)
	}
	if s := md.Get(KeyDataSchema); s != "" {
		ev.SetDataSchema(s)
	}
	for ext, key := range map[string]string{"kycstream": KeyStream, "kycrevision": KeyRevision, "kycposition": KeyPosition} {
		if v := md.Get(key); v != "" {
			ev.SetExtension(ext, v)
		}
	}
	contentType := md.Get(KeyDataContentType)
	if contentType == "" {
		contentType = cloudevents.ApplicationJSON
	}
	// Raw bytes would be kept as data_base64; JSON goes in as JSON so the
	// structured form carries it readably under "data".
	var data any = []byte(m.Payload)
	if contentType == cloudevents.ApplicationJSON {
		if !json.Valid(m.Payload) {
			return cloudevents.Event{}, fmt.Errorf("%w: message %s: the payload is not JSON", ErrNotAnEvent, m.UUID)
		}
		data = json.RawMessage(m.Payload)
	}
	if err := ev.SetData(contentType, data); err != nil {
		return cloudevents.Event{}, fmt.Errorf("%w: message %s: %w", ErrNotAnEvent, m.UUID, err)
	}
	if err := ev.Validate(); err != nil {
		return cloudevents.Event{}, fmt.Errorf("%w: message %s: %w", ErrNotAnEvent, m.UUID, err)
	}
	return ev, nil
}

// DomainType is the domain event type of a ce_type ("" when it is not one
// of the engine's).
func DomainType(ceType string) string {
	t, ok := strings.CutPrefix(ceType, TypePrefix)
	if !ok {
		return ""
	}
	return t
}
