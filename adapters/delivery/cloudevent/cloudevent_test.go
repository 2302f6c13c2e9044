package cloudevent

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/kycengine/kyc/domain"
)

func TestRoundTrip(t *testing.T) {
	e := domain.RecordedEvent{
		EventData: domain.EventData{
			ID: uuid.New(), Type: "StatusChanged", SchemaVersion: 2,
			OccurredAt: time.Date(2026, 11, 21, 10, 0, 0, 123, time.FixedZone("x", 3600)),
			Data:       json.RawMessage(`{"to":"APPROVED"}`), Personal: json.RawMessage(`{"name":"secret"}`),
		},
		Stream: domain.StreamName("c-1"), Revision: 4, Position: domain.Position{Commit: 90, Prepare: 88},
	}
	m := ToMessage(e, "")
	if m.UUID != e.ID.String() || string(m.Payload) != `{"to":"APPROVED"}` {
		t.Fatalf("message %s %s", m.UUID, m.Payload)
	}
	ev, err := FromMessage(m)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID() != e.ID.String() || ev.Type() != "kyc.customer.StatusChanged" || ev.Subject() != "c-1" ||
		ev.Source() != DefaultSource || !ev.Time().Equal(e.OccurredAt) || ev.DataSchema() != "urn:kyc:schema:events:StatusChanged.v2" ||
		string(ev.Data()) != `{"to":"APPROVED"}` || ev.Extensions()["kycrevision"] != "4" || ev.Extensions()["kycposition"] != "90/88" {
		t.Fatalf("cloud event %s", ev)
	}
	if DomainType(ev.Type()) != "StatusChanged" {
		t.Fatalf("domain type %q", DomainType(ev.Type()))
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var structured map[string]json.RawMessage
	if err := json.Unmarshal(b, &structured); err != nil || string(structured["data"]) != `{"to":"APPROVED"}` {
		t.Fatalf("structured JSON %s: the data must be there as JSON", b)
	}
	if p, err := ParsePosition(m.Metadata.Get(KeyPosition)); err != nil || p != e.Position {
		t.Fatalf("position %v %v", p, err)
	}
}

// The personal part never leaves the engine.
func TestPersonalPartIsNotPublished(t *testing.T) {
	e := domain.RecordedEvent{EventData: domain.EventData{ID: uuid.New(), Type: "CustomerRegistered", Data: json.RawMessage(`{}`), Personal: json.RawMessage(`{"name":"Ada"}`)}, Stream: "customer-x"}
	m := ToMessage(e, "/kyc")
	for k, v := range m.Metadata {
		if v == string(e.Personal) || k == "personal" {
			t.Fatalf("metadata %s carries the personal part", k)
		}
	}
	if string(m.Payload) != "{}" {
		t.Fatalf("payload %s", m.Payload)
	}
}

func TestFromMessageRefusesOtherMessages(t *testing.T) {
	for name, md := range map[string]message.Metadata{
		"none":      {},
		"bad time":  {KeySpecVersion: "1.0", KeyID: "1", KeyType: "t", KeySource: "/s", KeyTime: "yesterday"},
		"no source": {KeySpecVersion: "1.0", KeyID: "1", KeyType: "t"},
	} {
		m := message.NewMessage("1", []byte(`{}`))
		m.Metadata = md
		if _, err := FromMessage(m); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzFromMessage: whatever a bus hands over, decoding never panics, and
// what it accepts is a valid CloudEvent.
func FuzzFromMessage(f *testing.F) {
	f.Add("1.0", "id", "kyc.customer.NoteAdded", "/kyc", "2026-01-02T03:04:05Z", "application/json", []byte(`{"a":1}`))
	f.Add("0.3", "", "", "", "", "text/plain", []byte("x"))
	f.Fuzz(func(t *testing.T, spec, id, typ, source, at, contentType string, payload []byte) {
		m := message.NewMessage(id, payload)
		m.Metadata = message.Metadata{KeySpecVersion: spec, KeyID: id, KeyType: typ, KeySource: source, KeyTime: at, KeyDataContentType: contentType}
		ev, err := FromMessage(m)
		if err != nil {
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("accepted an invalid event: %v", err)
		}
	})
}
