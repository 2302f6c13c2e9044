package projections

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kycengine/kyc/domain"
)

// StreamReader reads one customer's stream, for the history.
type StreamReader interface {
	ReadStream(ctx context.Context, stream string, dir domain.Direction, from uint64, limit int) ([]domain.RecordedEvent, error)
}

// AppliedNotifier wakes waiters after a projection committed a batch.
type AppliedNotifier interface {
	// Applied returns a channel closed after the next commit of any
	// projection.
	Applied() <-chan struct{}
}

// ReaderConfig wires a Reader.
type ReaderConfig struct {
	Store   Store
	Streams StreamReader
	Codec   *domain.Codec
	// Notifier lets reads wait for a revision; nil polls.
	Notifier AppliedNotifier
	Clock    func() time.Time
	// MaxWait bounds how long a read waits for a revision (default 5s).
	MaxWait time.Duration
}

// Reader answers the read side's questions for a caller, with company
// isolation: a caller without the superuser role sees only its own
// company's customers and audit entries.
type Reader struct {
	store    Store
	streams  StreamReader
	codec    *domain.Codec
	notifier AppliedNotifier
	clock    func() time.Time
	maxWait  time.Duration
}

// NewReader validates the configuration.
func NewReader(cfg ReaderConfig) (*Reader, error) {
	if cfg.Store == nil || cfg.Streams == nil || cfg.Codec == nil {
		return nil, errors.New("projections: reader needs a store, a stream reader and a codec")
	}
	r := &Reader{store: cfg.Store, streams: cfg.Streams, codec: cfg.Codec, notifier: cfg.Notifier, clock: cfg.Clock, maxWait: cfg.MaxWait}
	if r.clock == nil {
		r.clock = time.Now
	}
	if r.maxWait <= 0 {
		r.maxWait = 5 * time.Second
	}
	return r, nil
}

// Now is the reader's clock, for rendering ages.
func (r *Reader) Now() time.Time { return r.clock() }

// ErrCompanyFilter: a caller without the superuser role used the company
// filter (seed 000: the company filter is for superusers only).
var ErrCompanyFilter = errors.New("the company filter is for superusers only")

// ErrRevisionTimeout: the read model did not reach the revision asked for in
// time.
var ErrRevisionTimeout = errors.New("the read model has not reached the revision asked for")

// RevisionTimeoutError details ErrRevisionTimeout.
type RevisionTimeoutError struct {
	CustomerID string
	Want       uint64
	// Have is the revision the read model holds; HaveAny is false when it
	// does not hold the customer at all yet.
	Have    uint64
	HaveAny bool
	Waited  time.Duration
}

func (e *RevisionTimeoutError) Error() string {
	have := "does not hold the customer yet"
	if e.HaveAny {
		have = fmt.Sprintf("holds revision %d", e.Have)
	}
	return fmt.Sprintf("%s: customer %s: waited %s for revision %d; the read model %s",
		ErrRevisionTimeout, e.CustomerID, e.Waited.Round(time.Millisecond), e.Want, have)
}

func (e *RevisionTimeoutError) Unwrap() error { return ErrRevisionTimeout }

// List returns a page of the customer list.
func (r *Reader) List(ctx context.Context, caller domain.Caller, q ListQuery) (ListPage, error) {
	if !caller.IsSuperuser() {
		if len(q.Companies) > 0 {
			return ListPage{}, &domain.FieldError{Field: "company", Detail: ErrCompanyFilter.Error(), Err: domain.ErrForbidden}
		}
		q.ScopeCompany = caller.Actor.Company
	}
	if q.Now.IsZero() {
		q.Now = r.clock()
	}
	return r.store.ListCustomers(ctx, q.Normalized())
}

// Customer returns a customer's row if the caller may see it. With
// minRevision it first waits, up to MaxWait or the context's deadline, until
// the read model holds that revision.
func (r *Reader) Customer(ctx context.Context, caller domain.Caller, id string, minRevision *uint64) (CustomerRow, error) {
	start := time.Now()
	deadline := time.NewTimer(r.maxWait)
	defer deadline.Stop()
	for {
		var wake <-chan struct{}
		if r.notifier != nil {
			wake = r.notifier.Applied()
		}
		row, err := r.store.Customer(ctx, id)
		switch {
		case err == nil && !visibleTo(caller, row.Customer.CompanyID):
			return CustomerRow{}, fmt.Errorf("customer %s: %w", id, ErrNotFound)
		case err == nil && (minRevision == nil || row.Customer.Revision >= *minRevision):
			return row, nil
		case err != nil && !errors.Is(err, ErrNotFound):
			return CustomerRow{}, err
		case err != nil && minRevision == nil:
			return CustomerRow{}, fmt.Errorf("customer %s: %w", id, err)
		}
		var poll <-chan time.Time
		if wake == nil {
			poll = time.After(10 * time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return CustomerRow{}, ctx.Err()
		case <-deadline.C:
			te := &RevisionTimeoutError{CustomerID: id, Want: *minRevision, Waited: time.Since(start)}
			if err == nil {
				te.Have, te.HaveAny = row.Customer.Revision, true
			}
			return CustomerRow{}, te
		case <-wake:
		case <-poll:
		}
	}
}

// Profile is Customer rendered for the caller.
func (r *Reader) Profile(ctx context.Context, caller domain.Caller, id string, minRevision *uint64) (Profile, error) {
	row, err := r.Customer(ctx, caller, id, minRevision)
	if err != nil {
		return Profile{}, err
	}
	return ProfileOf(row, caller, r.clock()), nil
}

// Audit returns a page of the audit log, newest first.
func (r *Reader) Audit(ctx context.Context, caller domain.Caller, q AuditQuery) (AuditPage, error) {
	if !caller.IsSuperuser() {
		if len(q.Companies) > 0 {
			return AuditPage{}, &domain.FieldError{Field: "company", Detail: ErrCompanyFilter.Error(), Err: domain.ErrForbidden}
		}
		q.ScopeCompany = caller.Actor.Company
	}
	return r.store.Audit(ctx, q.Normalized())
}

func visibleTo(caller domain.Caller, company string) bool {
	return caller.IsSuperuser() || caller.Actor.Company == company
}

// HistoryEntry is one step of a customer's timeline.
type HistoryEntry struct {
	EventLine
	RejectType string `json:"reject_type,omitempty"`
	// Changes are the customer's fields this event changed, with the value
	// before and after.
	Changes []FieldChange `json:"changes"`
}

// History folds a customer's stream into a readable timeline.
func (r *Reader) History(ctx context.Context, caller domain.Caller, id string) ([]HistoryEntry, error) {
	events, err := r.streams.ReadStream(ctx, domain.StreamName(id), domain.Forwards, 0, 0)
	if errors.Is(err, domain.ErrStreamNotFound) {
		return nil, fmt.Errorf("customer %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return HistoryOf(r.codec, caller, events)
}

// HistoryOf is History over events already read. A caller who may not see
// the customer gets ErrNotFound, as if it did not exist.
func HistoryOf(codec *domain.Codec, caller domain.Caller, events []domain.RecordedEvent) ([]HistoryEntry, error) {
	var (
		c             domain.Customer
		before        map[string]json.RawMessage
		out           = make([]HistoryEntry, 0, len(events))
		seesDocuments = hasPermission(caller, PermissionViewDocument)
	)
	for _, e := range events {
		rec, err := codec.DecodeRecorded(e)
		if err != nil {
			return nil, fmt.Errorf("history of %s: %w", e.Stream, err)
		}
		c.Apply(rec.Event, e)
		if e.Revision == 0 && !visibleTo(caller, c.CompanyID) {
			return nil, fmt.Errorf("customer %s: %w", c.ID, ErrNotFound)
		}
		after := fieldsOf(&c)
		h := HistoryEntry{EventLine: EventLineOf(rec.Event, e), Changes: diffFields(before, after)}
		if sc, ok := rec.Event.(*domain.StatusChanged); ok {
			h.RejectType = sc.RejectType
		}
		if caller.Actor.Kind == domain.ActorCustomer {
			h.Reason = ""
			h.Changes = slices.DeleteFunc(h.Changes, func(f FieldChange) bool { return hiddenFromCustomer[f.Field] })
		}
		if !seesDocuments {
			// As in the profile, view_document guards the documents
			// themselves.
			h.Changes = slices.DeleteFunc(h.Changes, func(f FieldChange) bool { return f.Field == "documents" })
		}
		out = append(out, h)
		before = after
	}
	return out, nil
}

// hiddenFromCustomer are internal fields never shown to the customer (seed 002).
var hiddenFromCustomer = map[string]bool{"state_reason": true, "status_changed_by": true, "check": true}

// fieldsOf is the customer's JSON fields, for diffing; the revision changes
// with every event and says nothing.
func fieldsOf(c *domain.Customer) map[string]json.RawMessage {
	b, err := json.Marshal(c)
	if err != nil {
		// A Customer is plain data; failing to marshal it is a programming error.
		panic(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	delete(m, "revision")
	return m
}

func diffFields(before, after map[string]json.RawMessage) []FieldChange {
	changes := []FieldChange{}
	for _, k := range sortedKeys(before, after) {
		b, a := before[k], after[k]
		if bytes.Equal(b, a) {
			continue
		}
		changes = append(changes, FieldChange{Field: k, From: b, To: a})
	}
	return changes
}

func sortedKeys(ms ...map[string]json.RawMessage) []string {
	var keys []string
	for _, m := range ms {
		for k := range m {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys
}
