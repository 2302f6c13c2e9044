package projections

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kycengine/kyc/domain"
)

// Audit is the projection behind the audit log: one entry per customer
// event, with who, when, the status move and the fields it changed.
type Audit struct {
	store Store
	codec *domain.Codec
	// companies keeps the company of the customers seen lately, per
	// generation. Events after a registration do not say it, and asking
	// the store for it was a round trip every batch. A customer's company
	// never changes, so a kept one is never stale.
	companies *generationCaches[string]
}

// companyCacheSize bounds each generation's cache of companies (twice this
// many at most are held).
const companyCacheSize = 16384

// NewAudit validates its dependencies.
func NewAudit(store Store, codec *domain.Codec) (*Audit, error) {
	if store == nil || codec == nil {
		return nil, fmt.Errorf("projections: audit projection needs a store and a codec")
	}
	return &Audit{store: store, codec: codec, companies: newGenerationCaches[string](companyCacheSize)}, nil
}

func (*Audit) Name() string { return AuditProjection }

// Forget implements Forgetter. What the cache holds would still be true;
// forgetting only keeps the caches of generations no longer applied from
// piling up.
func (p *Audit) Forget(gen Generation) { p.companies.forget(gen) }

// Version 1: entries with status moves and changed field names.
func (*Audit) Version() int { return 1 }

func (p *Audit) Apply(ctx context.Context, gen Generation, events []domain.RecordedEvent, last domain.Position) error {
	cache := p.companies.of(gen)
	companies := map[string]string{}
	var unknown []string
	for _, e := range events {
		id, ok := domain.CustomerIDFromStream(e.Stream)
		if !ok {
			continue
		}
		if _, seen := companies[id]; seen {
			continue
		}
		if e.Revision > 0 {
			if c, ok := cache.Get(id); ok {
				companies[id] = c
				continue
			}
			unknown = append(unknown, id)
		}
		companies[id] = "" // filled from the registration below, or from the store
	}
	if len(unknown) > 0 {
		known, err := p.store.AuditCompanies(ctx, gen, unknown)
		if err != nil {
			return fmt.Errorf("audit projection: companies: %w", err)
		}
		for id, c := range known {
			companies[id] = c
		}
	}
	entries := make([]AuditEntry, 0, len(events))
	for _, e := range events {
		id, ok := domain.CustomerIDFromStream(e.Stream)
		if !ok {
			continue
		}
		rec, err := p.codec.DecodeRecorded(e)
		if err != nil {
			return fmt.Errorf("audit projection: event %s (%s revision %d): %w", e.ID, e.Stream, e.Revision, err)
		}
		if reg, ok := rec.Event.(*domain.CustomerRegistered); ok {
			companies[id] = reg.CompanyID
		}
		if c := companies[id]; c != "" {
			cache.Put(id, c)
		}
		entry, err := AuditEntryOf(rec.Event, e, companies[id])
		if err != nil {
			return fmt.Errorf("audit projection: %w", err)
		}
		entries = append(entries, entry)
	}
	if err := p.store.AppendAudit(ctx, gen, last, entries); err != nil {
		return fmt.Errorf("audit projection: append: %w", err)
	}
	return nil
}

// AuditEntryOf describes one decoded event. The changes are the event's own
// fields: values of its ordinary part, and only the names of its personal
// part, so that erasing a customer's personal data (crypto-shredding the
// log) leaves nothing personal behind in the audit table.
func AuditEntryOf(ev domain.Event, e domain.RecordedEvent, company string) (AuditEntry, error) {
	id, _ := domain.CustomerIDFromStream(e.Stream)
	entry := AuditEntry{
		EventLine: EventLineOf(ev, e), Position: e.Position, CustomerID: id, CompanyID: company,
		CorrelationID: e.CorrelationID, Changes: []FieldChange{},
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return AuditEntry{}, fmt.Errorf("event %s: %w", e.ID, err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return AuditEntry{}, fmt.Errorf("event %s: %w", e.ID, err)
	}
	var personal map[string]json.RawMessage
	if len(e.Personal) > 0 {
		if err := json.Unmarshal(e.Personal, &personal); err != nil {
			return AuditEntry{}, fmt.Errorf("event %s: personal part: %w", e.ID, err)
		}
	}
	for _, k := range sortedKeys(fields) {
		entry.Changes = append(entry.Changes, FieldChange{Field: k, To: fields[k]})
	}
	for _, k := range sortedKeys(personal) {
		entry.Changes = append(entry.Changes, FieldChange{Field: k})
	}
	return entry, nil
}
