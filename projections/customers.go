package projections

import (
	"context"
	"fmt"

	"github.com/kycengine/kyc/domain"
)

// Projection turns events of the global log into read-model rows.
type Projection interface {
	Name() string
	// Version changes when the projection's logic or row shape changes; the
	// engine rebuilds a read model that an older version built.
	Version() int
	// Apply applies a batch of events, in global order, to generation gen
	// and moves its checkpoint to last, in one transaction of the store.
	Apply(ctx context.Context, gen Generation, events []domain.RecordedEvent, last domain.Position) error
}

// Forgetter is implemented by projections that keep state of a generation
// between batches. The engine calls Forget whenever a runner of gen starts or
// stops, because another runner (after a failure, or in another process that
// held the lease meanwhile) may have written the generation since.
type Forgetter interface {
	Forget(gen Generation)
}

// Customers is the projection behind the customer list and the profile: it
// folds each customer's events with the same domain.Customer.Apply the
// write side uses, so the read model cannot disagree with a replay.
type Customers struct {
	store      Store
	codec      *domain.Codec
	lifecycles *domain.Lifecycles

	// recent keeps the rows last written, per generation: a customer's
	// events come in bursts a few hundred customers apart in the log, and
	// loading a row back costs a query and a JSON decode, most of a batch's
	// time in a rebuild.
	recent *generationCaches[*CustomerRow]
}

// rowCacheSize bounds each generation's cache of recent rows (twice this
// many at most are held).
const rowCacheSize = 8192

// Forget implements Forgetter.
func (p *Customers) Forget(gen Generation) { p.recent.forget(gen) }

// NewCustomers validates its dependencies.
func NewCustomers(store Store, codec *domain.Codec, lifecycles *domain.Lifecycles) (*Customers, error) {
	if store == nil || codec == nil || lifecycles == nil {
		return nil, fmt.Errorf("projections: customers projection needs a store, a codec and the lifecycles")
	}
	return &Customers{store: store, codec: codec, lifecycles: lifecycles, recent: newGenerationCaches[*CustomerRow](rowCacheSize)}, nil
}

func (*Customers) Name() string { return CustomersProjection }

// Version 1: rows of domain.Customer with the seed 000 and 002 filter columns.
func (*Customers) Version() int { return 1 }

func (p *Customers) Apply(ctx context.Context, gen Generation, events []domain.RecordedEvent, last domain.Position) error {
	// Only one runner applies a generation at a time, so the cache needs no
	// lock of its own while Apply runs; a failed batch may have changed
	// cached rows without storing them, so it forgets them all.
	cache := p.recent.of(gen)
	if err := p.apply(ctx, gen, cache, events, last); err != nil {
		p.Forget(gen)
		return err
	}
	return nil
}

func (p *Customers) apply(ctx context.Context, gen Generation, cache *RecentCache[*CustomerRow], events []domain.RecordedEvent, last domain.Position) error {
	// Customers whose registration is in this batch need no load, nor do
	// those in the cache.
	var order, load []string
	state := map[string]*CustomerRow{}
	for _, e := range events {
		id, ok := domain.CustomerIDFromStream(e.Stream)
		if !ok {
			continue
		}
		if _, seen := state[id]; seen {
			continue
		}
		order = append(order, id)
		if r, ok := cache.Get(id); ok {
			state[id] = r
			continue
		}
		state[id] = nil
		if e.Revision != 0 {
			load = append(load, id)
		}
	}
	stored, err := p.store.LoadCustomers(ctx, gen, load)
	if err != nil {
		return fmt.Errorf("customers projection: load: %w", err)
	}
	for _, e := range events {
		id, ok := domain.CustomerIDFromStream(e.Stream)
		if !ok {
			continue
		}
		row := state[id]
		if row == nil {
			r, ok := stored[id]
			if !ok {
				r = CustomerRow{Customer: &domain.Customer{}}
			}
			row = &r
			state[id] = row
		}
		if row.Customer.Exists() && e.Revision <= row.Customer.Revision {
			continue // already applied: the checkpoint and rows moved together before
		}
		rec, err := p.codec.DecodeRecorded(e)
		if err != nil {
			return fmt.Errorf("customers projection: event %s (%s revision %d): %w", e.ID, e.Stream, e.Revision, err)
		}
		row.Customer.Apply(rec.Event, e)
	}
	rows := make([]CustomerRow, 0, len(order))
	for _, id := range order {
		row := state[id]
		if !row.Customer.Exists() {
			// Events of a stream whose registration is not in the log cannot
			// be shown; the write side never produces them.
			continue
		}
		p.derive(row)
		rows = append(rows, *row)
	}
	if err := p.store.PutCustomers(ctx, gen, last, rows); err != nil {
		return fmt.Errorf("customers projection: put: %w", err)
	}
	// PutCustomers numbered new rows; the cache keeps them as stored.
	for i := range rows {
		r := state[rows[i].Customer.ID]
		r.Seq = rows[i].Seq
		cache.Put(r.Customer.ID, r)
	}
	return nil
}

func (p *Customers) derive(r *CustomerRow) {
	l, _ := p.lifecycles.Get(r.Customer.Lifecycle, r.Customer.LifecycleVersion)
	r.VerificationStatus = r.Customer.VerificationStatus()
	r.State = r.Customer.State(l)
	r.AggregatedStatus = r.Customer.AggregatedStatus(l)
}
