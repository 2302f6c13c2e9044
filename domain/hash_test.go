package domain_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/kycengine/kyc/domain"
)

func chainedEvent() domain.EventData {
	return domain.EventData{
		ID:             uuid.MustParse("01939a6e-5b2c-7c3d-8e4f-0123456789ab"),
		Type:           "StatusChanged",
		SchemaVersion:  1,
		OccurredAt:     time.Date(2026, 3, 1, 9, 30, 15, 123456789, time.UTC),
		Actor:          domain.Actor{Kind: domain.ActorOperator, ID: "alice", Company: "acme"},
		CorrelationID:  "corr-1",
		CausationID:    "cause-1",
		IdempotencyKey: "key-1",
		Data:           []byte(`{"from":"PENDING_REVIEW","to":"REJECTED"}`),
		Personal:       []byte(`{"name":{"first":"Ada"}}`),
	}
}

// TestChainHashIsStable pins the hash of one event. Stored logs carry these
// hashes and auditors recompute them with their own tools, so any change to
// what the hash covers or how must come as a new chain version, never as an
// edit: this test fails on such an edit. The value was computed outside Go,
// from the scheme as ChainHash describes it: SHA-256 over length-prefixed
// fields (8-byte big-endian lengths), the payloads by their own SHA-256.
func TestChainHashIsStable(t *testing.T) {
	const want = "37fe9e57630546b225bb83a6c917b4738de8c67320762d700ac13761ba060eed"
	got := domain.ChainHash("prev-hash", "customer-1", 7, chainedEvent())
	if got != want {
		t.Fatalf("ChainHash = %s, want %s", got, want)
	}
}

// TestChainHashCoversEveryField: changing anything an event says about what
// happened, or where it sits in its stream, changes its hash, so the chain
// shows the change. What the store assigns (position, recorded-at) is left
// out on purpose, so the same stream hashes the same in every store.
func TestChainHashCoversEveryField(t *testing.T) {
	base := domain.ChainHash("prev-hash", "customer-1", 7, chainedEvent())
	tests := []struct {
		name   string
		prev   string
		stream string
		rev    uint64
		edit   func(*domain.EventData)
	}{
		{name: "previous hash", prev: "other-hash"},
		{name: "stream", stream: "customer-2"},
		{name: "revision", rev: 8},
		{name: "id", edit: func(e *domain.EventData) { e.ID[15]++ }},
		{name: "type", edit: func(e *domain.EventData) { e.Type = "StatusChangedX" }},
		{name: "schema version", edit: func(e *domain.EventData) { e.SchemaVersion = 2 }},
		{name: "occurred at", edit: func(e *domain.EventData) { e.OccurredAt = e.OccurredAt.Add(time.Nanosecond) }},
		{name: "actor kind", edit: func(e *domain.EventData) { e.Actor.Kind = domain.ActorSystem }},
		{name: "actor id", edit: func(e *domain.EventData) { e.Actor.ID = "mallory" }},
		{name: "actor company", edit: func(e *domain.EventData) { e.Actor.Company = "globex" }},
		{name: "correlation id", edit: func(e *domain.EventData) { e.CorrelationID = "corr-2" }},
		{name: "causation id", edit: func(e *domain.EventData) { e.CausationID = "cause-2" }},
		{name: "idempotency key", edit: func(e *domain.EventData) { e.IdempotencyKey = "key-2" }},
		{name: "data", edit: func(e *domain.EventData) { e.Data = []byte(`{"from":"PENDING_REVIEW","to":"APPROVED"}`) }},
		{name: "personal data", edit: func(e *domain.EventData) { e.Personal = []byte(`{"name":{"first":"Eve"}}`) }},
		// Length prefixes keep bytes from moving between fields unseen.
		{name: "bytes moved between fields", edit: func(e *domain.EventData) { e.CorrelationID, e.CausationID = "corr-1c", "ause-1" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prev, stream, rev, e := "prev-hash", "customer-1", uint64(7), chainedEvent()
			if tt.prev != "" {
				prev = tt.prev
			}
			if tt.stream != "" {
				stream = tt.stream
			}
			if tt.rev != 0 {
				rev = tt.rev
			}
			if tt.edit != nil {
				tt.edit(&e)
			}
			if domain.ChainHash(prev, stream, rev, e) == base {
				t.Fatalf("changing the %s leaves the hash as it was", tt.name)
			}
		})
	}
	// The instant counts, not how it is written down.
	e := chainedEvent()
	e.OccurredAt = e.OccurredAt.In(time.FixedZone("CET", 3600))
	if got := domain.ChainHash("prev-hash", "customer-1", 7, e); got != base {
		t.Fatalf("the same instant in another zone hashes %s, want %s", got, base)
	}
}

// TestVerifyChainFindsTheFirstBrokenLink: an altered event, a missing one
// and a relinked one are each reported at the event where the chain breaks.
func TestVerifyChainFindsTheFirstBrokenLink(t *testing.T) {
	stream := func() []domain.RecordedEvent {
		var out []domain.RecordedEvent
		prev := ""
		for rev := range uint64(4) {
			e := chainedEvent()
			e.ID[15] = byte(rev)
			hash := domain.ChainHash(prev, "customer-1", rev, e)
			out = append(out, domain.RecordedEvent{EventData: e, Stream: "customer-1", Revision: rev, PrevHash: prev, Hash: hash})
			prev = hash
		}
		return out
	}
	if broken := domain.VerifyChain(stream()); broken != nil {
		t.Fatalf("an intact stream: %+v", broken)
	}
	tests := []struct {
		name   string
		tamper func([]domain.RecordedEvent) []domain.RecordedEvent
		at     uint64
		reason string
	}{
		{"altered", func(s []domain.RecordedEvent) []domain.RecordedEvent { s[2].Actor.ID = "mallory"; return s }, 2, "altered"},
		{"missing", func(s []domain.RecordedEvent) []domain.RecordedEvent { return append(s[:1], s[2:]...) }, 2, "missing"},
		{"relinked", func(s []domain.RecordedEvent) []domain.RecordedEvent {
			// Only the link rewritten: the content still matches its hash.
			s[1].PrevHash = "forged"
			return s
		}, 1, "previous-hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			broken := domain.VerifyChain(tt.tamper(stream()))
			if broken == nil || broken.Revision != tt.at || !strings.Contains(broken.Reason, tt.reason) {
				t.Fatalf("broken link %+v, want one at revision %d mentioning %q", broken, tt.at, tt.reason)
			}
		})
	}
}
