// Package projections is the read side of the engine: the projection engine
// (checkpoints, catch-up, rebuild, lag) and the read models (customer list,
// profile, audit log) as pure logic over a read-model store port. The write
// side does not depend on it; adapters implement Store.
package projections

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kycengine/kyc/domain"
)

// Names of the projections the engine runs. The list and the profile are one
// read model (one row per customer), so the customer's stream is folded once.
const (
	CustomersProjection = "customers"
	AuditProjection     = "audit"
)

// Page sizes the list and the audit log accept (seed 000).
var PageSizes = []int{20, 50, 100}

// DefaultPerPage is the page size when none is asked for.
const DefaultPerPage = 20

// MaxPage is the highest page number a query asks for.
const MaxPage = 1_000_000

// Errors of the read side.
var (
	// ErrNotFound: no such row in the read model (or not visible to the caller).
	ErrNotFound = errors.New("not found in the read model")
	// ErrUnknownProjection: a projection name the engine does not run.
	ErrUnknownProjection = errors.New("unknown projection")
	// ErrRebuildRunning: a rebuild of that projection is already running.
	ErrRebuildRunning = errors.New("a rebuild of this projection is already running")
	// ErrRunsElsewhere: another process holds the projection's lease, so
	// only that process can rebuild it.
	ErrRunsElsewhere = errors.New("this projection runs in another process")
)

// CustomerRow is one customer in the customers read model: the folded state
// and the derived fields that filters need. Rows are what projections write
// and what the list and profile read.
type CustomerRow struct {
	Customer *domain.Customer
	// Derived at projection time from the customer and its lifecycle.
	VerificationStatus string
	State              string
	AggregatedStatus   string
	// Seq orders customers by first appearance; it breaks sort ties so
	// pagination is stable. Stores assign it on first insert.
	Seq int64
}

// SortKey is a field the list sorts on.
type SortKey string

const (
	SortCreatedAt        SortKey = "created_at"
	SortLastStatusUpdate SortKey = "last_status_update"
	SortName             SortKey = "name"
)

// SortKeys are the keys the list accepts.
var SortKeys = []SortKey{SortCreatedAt, SortLastStatusUpdate, SortName}

// TimeRange is a half-open interval [From, To); a zero bound is open.
type TimeRange struct {
	From, To time.Time
}

// IsZero reports an unbounded range.
func (r TimeRange) IsZero() bool { return r.From.IsZero() && r.To.IsZero() }

// Contains reports whether t lies in the range.
func (r TimeRange) Contains(t time.Time) bool {
	return (r.From.IsZero() || !t.Before(r.From)) && (r.To.IsZero() || t.Before(r.To))
}

// DateRange is an inclusive range of ISO dates (YYYY-MM-DD); empty is open.
type DateRange struct {
	From, To string
}

// IsZero reports an unbounded range.
func (r DateRange) IsZero() bool { return r.From == "" && r.To == "" }

// Contains reports whether the date d lies in the range. ISO dates order as
// strings.
func (r DateRange) Contains(d string) bool {
	return d != "" && (r.From == "" || d >= r.From) && (r.To == "" || d <= r.To)
}

// ListQuery selects and orders customers. Each list field means "any of";
// fields combine with "and". A zero ListQuery lists everything.
type ListQuery struct {
	// ScopeCompany, when set, limits the result to that company whatever
	// else is asked: it is how company isolation reaches the store.
	ScopeCompany string

	// Q is free text: every word must be a prefix of one of the customer's
	// search terms (see SearchTerms).
	Q                    string
	Statuses             []string
	Created              TimeRange
	Updated              TimeRange
	Companies            []string
	DocumentTypes        []string
	Nationalities        []string
	Expiry               DateRange
	Risks                []string
	AgeMin, AgeMax       *int
	VideoCallStatuses    []string
	VerificationLevels   []int
	VerificationStatuses []string
	States               []string
	Countries            []string
	Tags                 []string
	AccessRoles          []string
	AccessGroups         []string
	Agents               []string
	ReferralCodes        []string

	Sort SortKey
	Desc bool
	// Page counts from 1.
	Page, PerPage int
	// Now is the time ages are computed at.
	Now time.Time
}

// Normalized fills defaults: first page of 20, newest first.
func (q ListQuery) Normalized() ListQuery {
	if q.Sort == "" {
		q.Sort, q.Desc = SortCreatedAt, true
	}
	if q.Page < 1 {
		q.Page = 1
	}
	if q.PerPage <= 0 {
		q.PerPage = DefaultPerPage
	}
	// Past this page the offset would overflow; such a page is empty anyway.
	q.Page = min(q.Page, MaxPage)
	if q.Now.IsZero() {
		q.Now = time.Now()
	}
	return q
}

// Offset of the query's first row.
func (q ListQuery) Offset() int { return (q.Page - 1) * q.PerPage }

// BirthBounds turns the age bounds into bounds on the ISO birth date at
// q.Now: age >= min means born on or before (year-min, month, day), and
// age <= max means born after (year-max-1, month, day). The bounds are
// compared as strings and need not be real dates (a 29 February in a common
// year still orders right), which is what makes them agree with
// domain.Customer.Age. Empty bounds are open.
func (q ListQuery) BirthBounds() (bornAfter, bornOnOrBefore string) {
	now := q.Now.UTC()
	ymd := func(years int) string {
		return fmt.Sprintf("%04d-%02d-%02d", now.Year()-years, int(now.Month()), now.Day())
	}
	if q.AgeMax != nil {
		bornAfter = ymd(*q.AgeMax + 1)
	}
	if q.AgeMin != nil {
		bornOnOrBefore = ymd(*q.AgeMin)
	}
	return bornAfter, bornOnOrBefore
}

// ListPage is one page of the customer list.
type ListPage struct {
	Total   int
	Page    int
	PerPage int
	Rows    []CustomerRow
}

// EventLine is what the audit log and the history both say of an event:
// which one, who, when, and the status move it made.
type EventLine struct {
	EventID    string       `json:"event_id"`
	Revision   uint64       `json:"revision"`
	Type       string       `json:"type"`
	Actor      domain.Actor `json:"actor"`
	OccurredAt time.Time    `json:"occurred_at"`
	RecordedAt time.Time    `json:"recorded_at"`
	// From, To, Transition, Reason and Labels are set for status changes.
	From       string   `json:"from,omitempty"`
	To         string   `json:"to,omitempty"`
	Transition string   `json:"transition,omitempty"`
	Reason     string   `json:"reason,omitempty"`
	Labels     []string `json:"labels,omitempty"`
}

// EventLineOf describes a decoded event.
func EventLineOf(ev domain.Event, e domain.RecordedEvent) EventLine {
	l := EventLine{EventID: e.ID.String(), Revision: e.Revision, Type: e.Type, Actor: e.Actor,
		OccurredAt: e.OccurredAt, RecordedAt: e.RecordedAt}
	if sc, ok := ev.(*domain.StatusChanged); ok {
		l.From, l.To, l.Transition, l.Reason, l.Labels = sc.From, sc.To, sc.Transition, sc.Reason, sc.Labels
	}
	return l
}

// AuditEntry is one event as the audit log shows it.
type AuditEntry struct {
	EventLine
	Position   domain.Position `json:"position"`
	CustomerID string          `json:"customer_id"`
	CompanyID  string          `json:"company_id"`
	// Changes names the fields the event changed. Values of personal fields
	// are left out, so the audit log holds no personal data of its own.
	Changes       []FieldChange `json:"changes"`
	CorrelationID string        `json:"correlation_id,omitempty"`
}

// FieldChange is one field an event changed. From is only known where the
// whole stream was folded (the history); To is omitted for personal data in
// the audit log.
type FieldChange struct {
	Field string          `json:"field"`
	From  json.RawMessage `json:"from,omitempty"`
	To    json.RawMessage `json:"to,omitempty"`
}

// AuditQuery selects audit entries; list fields mean "any of".
type AuditQuery struct {
	ScopeCompany string
	Customers    []string
	Actors       []string
	Types        []string
	Companies    []string
	Time         TimeRange
	Page         int
	PerPage      int
}

// Normalized fills defaults.
func (q AuditQuery) Normalized() AuditQuery {
	if q.Page < 1 {
		q.Page = 1
	}
	if q.PerPage <= 0 {
		q.PerPage = DefaultPerPage
	}
	q.Page = min(q.Page, MaxPage)
	return q
}

// AuditPage is one page of the audit log, newest first.
type AuditPage struct {
	Total   int
	Page    int
	PerPage int
	Entries []AuditEntry
}

// Generation identifies one set of a projection's tables. A rebuild fills a
// new generation while reads use the active one, then swaps them.
type Generation int64

// ProjectionState is what a store knows of one projection.
type ProjectionState struct {
	Name string
	// Version of the projection logic that built the active generation.
	Version    int
	Active     Generation
	Checkpoint domain.Position
	UpdatedAt  time.Time
	// Building lists generations being filled by a rebuild.
	Building []Generation
}

func (s ProjectionState) String() string {
	return fmt.Sprintf("%s v%d gen %d at %s", s.Name, s.Version, s.Active, s.Checkpoint)
}
