// Package memory is an in-memory projections.Store: the reference
// implementation the conformance suite is written against, and the store of
// tests that need read models without a database. Its queries are the plain
// Go rules of projections (Matches, Compare), so every other adapter can be
// checked against it.
package memory

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// ErrNoGeneration: the generation does not exist (never created, or dropped).
var ErrNoGeneration = errors.New("no such generation")

// ErrActiveGeneration: the generation serves reads and cannot be dropped.
var ErrActiveGeneration = errors.New("the generation is active")

// ErrWrongProjection: a generation was used for another projection's rows.
var ErrWrongProjection = errors.New("the generation belongs to another projection")

// registeredType is the event type that tells the audit generation which
// company a customer belongs to.
const registeredType = "CustomerRegistered"

// Store holds every generation of every projection in memory. One mutex
// guards it all: reads are cheap copies and writers are one engine, so
// finer locking would buy nothing.
type Store struct {
	mu      sync.Mutex
	clock   func() time.Time
	lastGen projections.Generation
	gens    map[projections.Generation]*generation
	active  map[string]projections.Generation
}

type generation struct {
	name       string
	version    int
	checkpoint domain.Position
	updatedAt  time.Time

	// customers projection
	customers map[string]projections.CustomerRow
	lastSeq   int64

	// audit projection, in append order
	audit     []projections.AuditEntry
	companies map[string]string
}

// Option configures a Store.
type Option func(*Store)

// New returns an empty store.
func New(opts ...Option) *Store {
	s := &Store{clock: time.Now, gens: map[projections.Generation]*generation{}, active: map[string]projections.Generation{}}
	for _, o := range opts {
		o(s)
	}
	return s
}

var _ projections.Store = (*Store)(nil)

func knownProjection(name string) error {
	switch name {
	case projections.CustomersProjection, projections.AuditProjection:
		return nil
	}
	return fmt.Errorf("%w: %q", projections.ErrUnknownProjection, name)
}

// State implements projections.Store.
func (s *Store) State(ctx context.Context, name string) (projections.ProjectionState, bool, error) {
	if err := ctx.Err(); err != nil {
		return projections.ProjectionState{}, false, err
	}
	if err := knownProjection(name); err != nil {
		return projections.ProjectionState{}, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := projections.ProjectionState{Name: name}
	active, ok := s.active[name]
	for id, g := range s.gens {
		if g.name == name && (!ok || id != active) {
			st.Building = append(st.Building, id)
		}
	}
	slices.Sort(st.Building)
	if !ok {
		return st, false, nil
	}
	g := s.gens[active]
	st.Version, st.Active, st.Checkpoint, st.UpdatedAt = g.version, active, g.checkpoint, g.updatedAt
	return st, true, nil
}

// CreateGeneration implements projections.Store.
func (s *Store) CreateGeneration(ctx context.Context, name string, version int) (projections.Generation, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := knownProjection(name); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastGen++
	g := &generation{name: name, version: version, updatedAt: s.clock()}
	if name == projections.CustomersProjection {
		g.customers = map[string]projections.CustomerRow{}
	} else {
		g.companies = map[string]string{}
	}
	s.gens[s.lastGen] = g
	return s.lastGen, nil
}

// generation finds gen, which must belong to name ("" accepts any); the
// caller holds the lock.
func (s *Store) generation(name string, gen projections.Generation) (*generation, error) {
	g := s.gens[gen]
	if g == nil {
		return nil, fmt.Errorf("generation %d: %w", gen, ErrNoGeneration)
	}
	if name != "" && g.name != name {
		return nil, fmt.Errorf("generation %d is of %s, not %s: %w", gen, g.name, name, ErrWrongProjection)
	}
	return g, nil
}

// Checkpoint implements projections.Store.
func (s *Store) Checkpoint(ctx context.Context, name string, gen projections.Generation) (domain.Position, error) {
	if err := ctx.Err(); err != nil {
		return domain.Position{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.generation(name, gen)
	if err != nil {
		return domain.Position{}, err
	}
	return g.checkpoint, nil
}

// Activate implements projections.Store. Reads hold the lock for their whole
// duration, so the replaced generation can be dropped at once.
func (s *Store) Activate(ctx context.Context, name string, gen projections.Generation) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := knownProjection(name); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.generation(name, gen); err != nil {
		return err
	}
	if old, ok := s.active[name]; ok && old != gen {
		delete(s.gens, old)
	}
	s.active[name] = gen
	return nil
}

// DropGeneration implements projections.Store.
func (s *Store) DropGeneration(ctx context.Context, name string, gen projections.Generation) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.generation(name, gen); err != nil {
		return err
	}
	if active, ok := s.active[name]; ok && active == gen {
		return fmt.Errorf("drop %s generation %d: %w", name, gen, ErrActiveGeneration)
	}
	delete(s.gens, gen)
	return nil
}

// LoadCustomers implements projections.Store.
func (s *Store) LoadCustomers(ctx context.Context, gen projections.Generation, ids []string) (map[string]projections.CustomerRow, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.generation(projections.CustomersProjection, gen)
	if err != nil {
		return nil, err
	}
	out := make(map[string]projections.CustomerRow, len(ids))
	for _, id := range ids {
		if r, ok := g.customers[id]; ok {
			out[id] = cloneRow(r)
		}
	}
	return out, nil
}

// PutCustomers implements projections.Store. The seq a caller passes is
// ignored: the store owns it, so that a replaced row keeps its place.
func (s *Store) PutCustomers(ctx context.Context, gen projections.Generation, checkpoint domain.Position, rows []projections.CustomerRow) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, r := range rows {
		if r.Customer == nil || r.Customer.ID == "" {
			return errors.New("put customers: a row has no customer id")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.generation(projections.CustomersProjection, gen)
	if err != nil {
		return err
	}
	for _, r := range rows {
		r = cloneRow(r)
		if old, ok := g.customers[r.Customer.ID]; ok {
			r.Seq = old.Seq
		} else {
			g.lastSeq++
			r.Seq = g.lastSeq
		}
		g.customers[r.Customer.ID] = r
	}
	g.checkpoint, g.updatedAt = checkpoint, s.clock()
	return nil
}

// AuditCompanies implements projections.Store.
func (s *Store) AuditCompanies(ctx context.Context, gen projections.Generation, customerIDs []string) (map[string]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.generation(projections.AuditProjection, gen)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(customerIDs))
	for _, id := range customerIDs {
		if c, ok := g.companies[id]; ok {
			out[id] = c
		}
	}
	return out, nil
}

// AppendAudit implements projections.Store.
func (s *Store) AppendAudit(ctx context.Context, gen projections.Generation, checkpoint domain.Position, entries []projections.AuditEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.generation(projections.AuditProjection, gen)
	if err != nil {
		return err
	}
	for _, e := range entries {
		g.audit = append(g.audit, cloneEntry(e))
		if e.Type == registeredType {
			g.companies[e.CustomerID] = e.CompanyID
		}
	}
	g.checkpoint, g.updatedAt = checkpoint, s.clock()
	return nil
}

// activeGen returns the active generation of name, nil when there is none
// yet; the caller holds the lock.
func (s *Store) activeGen(name string) *generation {
	id, ok := s.active[name]
	if !ok {
		return nil
	}
	return s.gens[id]
}

// Customer implements projections.Store.
func (s *Store) Customer(ctx context.Context, id string) (projections.CustomerRow, error) {
	if err := ctx.Err(); err != nil {
		return projections.CustomerRow{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.activeGen(projections.CustomersProjection)
	if g == nil {
		return projections.CustomerRow{}, fmt.Errorf("customer %s: %w", id, projections.ErrNotFound)
	}
	r, ok := g.customers[id]
	if !ok {
		return projections.CustomerRow{}, fmt.Errorf("customer %s: %w", id, projections.ErrNotFound)
	}
	return cloneRow(r), nil
}

// ListCustomers implements projections.Store.
func (s *Store) ListCustomers(ctx context.Context, q projections.ListQuery) (projections.ListPage, error) {
	if err := ctx.Err(); err != nil {
		return projections.ListPage{}, err
	}
	page := projections.ListPage{Page: q.Page, PerPage: q.PerPage, Rows: []projections.CustomerRow{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.activeGen(projections.CustomersProjection)
	if g == nil {
		return page, nil
	}
	var matched []projections.CustomerRow
	for _, r := range g.customers {
		if q.Matches(r) {
			matched = append(matched, r)
		}
	}
	// Map order is random; Compare breaks every tie by Seq, so the stable
	// sort gives one order whatever the map's.
	slices.SortStableFunc(matched, q.Compare)
	page.Total = len(matched)
	for _, r := range window(matched, q.Page, q.PerPage) {
		page.Rows = append(page.Rows, cloneRow(r))
	}
	return page, nil
}

// Audit implements projections.Store.
func (s *Store) Audit(ctx context.Context, q projections.AuditQuery) (projections.AuditPage, error) {
	if err := ctx.Err(); err != nil {
		return projections.AuditPage{}, err
	}
	page := projections.AuditPage{Page: q.Page, PerPage: q.PerPage, Entries: []projections.AuditEntry{}}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.activeGen(projections.AuditProjection)
	if g == nil {
		return page, nil
	}
	anyOf := func(set []string, v string) bool { return len(set) == 0 || slices.Contains(set, v) }
	var matched []projections.AuditEntry
	// Newest first: walk backwards so entries that share a position keep
	// their newest-appended-first order through the stable sort.
	for i := len(g.audit) - 1; i >= 0; i-- {
		e := g.audit[i]
		if (q.ScopeCompany != "" && e.CompanyID != q.ScopeCompany) || !anyOf(q.Customers, e.CustomerID) ||
			!anyOf(q.Actors, e.Actor.ID) || !anyOf(q.Types, e.Type) || !anyOf(q.Companies, e.CompanyID) ||
			(!q.Time.IsZero() && !q.Time.Contains(e.OccurredAt)) {
			continue
		}
		matched = append(matched, e)
	}
	slices.SortStableFunc(matched, func(a, b projections.AuditEntry) int { return comparePositions(b.Position, a.Position) })
	page.Total = len(matched)
	for _, e := range window(matched, q.Page, q.PerPage) {
		page.Entries = append(page.Entries, cloneEntry(e))
	}
	return page, nil
}

func comparePositions(a, b domain.Position) int {
	if c := cmp.Compare(a.Commit, b.Commit); c != 0 {
		return c
	}
	return cmp.Compare(a.Prepare, b.Prepare)
}

// window returns one page of s. Pages are counted from 1; out-of-range or
// nonsensical pages are empty rather than a panic, because page numbers come
// from clients.
func window[T any](s []T, page, perPage int) []T {
	if perPage <= 0 {
		perPage = projections.DefaultPerPage
	}
	// Comparing before multiplying keeps a huge page from overflowing.
	if page < 1 || page-1 > len(s)/perPage {
		return nil
	}
	start := (page - 1) * perPage
	return s[start:min(len(s), start+perPage)]
}

func cloneRow(r projections.CustomerRow) projections.CustomerRow {
	if r.Customer != nil {
		r.Customer = r.Customer.Clone()
		// Clone copies the rules but shares their raw details.
		for i := range r.Customer.Rules {
			r.Customer.Rules[i].Details = cloneRaw(r.Customer.Rules[i].Details)
		}
	}
	return r
}

func cloneEntry(e projections.AuditEntry) projections.AuditEntry {
	if e.Labels != nil {
		e.Labels = slices.Clone(e.Labels)
	}
	if e.Changes != nil {
		changes := make([]projections.FieldChange, len(e.Changes))
		for i, c := range e.Changes {
			changes[i] = projections.FieldChange{Field: c.Field, From: cloneRaw(c.From), To: cloneRaw(c.To)}
		}
		e.Changes = changes
	}
	return e
}

func cloneRaw(m json.RawMessage) json.RawMessage {
	if m == nil {
		return nil
	}
	return slices.Clone(m)
}
