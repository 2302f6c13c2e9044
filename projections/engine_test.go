package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kycengine/kyc/adapters/demo"
	"github.com/kycengine/kyc/adapters/enginetest"
	eventmemory "github.com/kycengine/kyc/adapters/eventstore/memory"
	readmemory "github.com/kycengine/kyc/adapters/readmodel/memory"
	"github.com/kycengine/kyc/adapters/readmodel/sqlite"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

var superuser = domain.Caller{Actor: domain.Actor{Kind: domain.ActorOperator, ID: "root", Company: "acme"}, Roles: []string{domain.RoleSuperuser}}

// readStores are the read-model stores the engine is tested on.
var readStores = map[string]func(t *testing.T) projections.Store{
	"memory": func(t *testing.T) projections.Store { return readmemory.New() },
	"sqlite": func(t *testing.T) projections.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "read.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
}

type world struct {
	svc    *domain.Service
	events *eventmemory.Store
	store  projections.Store
	engine *projections.Engine
	reader *projections.Reader
	ctx    context.Context
	stop   func()
}

func newWorld(t *testing.T, store projections.Store, batch int) *world {
	t.Helper()
	svc, events := enginetest.NewService(t)
	codec := svc.Codec()
	customers, err := projections.NewCustomers(store, codec, svc.Lifecycles())
	if err != nil {
		t.Fatal(err)
	}
	audit, err := projections.NewAudit(store, codec)
	if err != nil {
		t.Fatal(err)
	}
	engine, err := projections.NewEngine(projections.EngineConfig{Events: events, Store: store,
		Projections: []projections.Projection{customers, audit}, BatchSize: batch})
	if err != nil {
		t.Fatal(err)
	}
	reader, err := projections.NewReader(projections.ReaderConfig{Store: store, Streams: events, Codec: codec, Notifier: engine, MaxWait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := func() {
		cancel()
		engine.Wait()
	}
	t.Cleanup(stop)
	return &world{svc: svc, events: events, store: store, engine: engine, reader: reader, ctx: ctx, stop: stop}
}

func (w *world) start(t *testing.T) {
	t.Helper()
	if err := w.engine.Start(w.ctx); err != nil {
		t.Fatal(err)
	}
}

// waitCaughtUp waits until every projection has applied the whole log.
func (w *world) waitCaughtUp(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		sts, err := w.engine.Status(w.ctx)
		if err != nil {
			t.Fatal(err)
		}
		done := true
		for _, s := range sts {
			if s.LagEvents != 0 || s.Rebuild != nil || s.Error != "" {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections did not catch up: %+v", sts)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// snapshot is every row of both read models, as JSON, in a fixed order.
type snapshot struct {
	customers []string
	audit     []string
}

func takeSnapshot(t *testing.T, store projections.Store) snapshot {
	t.Helper()
	ctx := context.Background()
	var s snapshot
	for page := 1; ; page++ {
		res, err := store.ListCustomers(ctx, projections.ListQuery{Sort: projections.SortCreatedAt, Page: page, PerPage: 100,
			Now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}.Normalized())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.Rows {
			b, err := json.Marshal(struct {
				C              *domain.Customer
				VS, State, Agg string
				Seq            int64
			}{r.Customer, r.VerificationStatus, r.State, r.AggregatedStatus, r.Seq})
			if err != nil {
				t.Fatal(err)
			}
			s.customers = append(s.customers, string(b))
		}
		if len(res.Rows) < 100 {
			break
		}
	}
	for page := 1; ; page++ {
		res, err := store.Audit(ctx, projections.AuditQuery{Page: page, PerPage: 100}.Normalized())
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range res.Entries {
			b, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			s.audit = append(s.audit, string(b))
		}
		if len(res.Entries) < 100 {
			break
		}
	}
	return s
}

func sameSnapshots(t *testing.T, what string, a, b snapshot) {
	t.Helper()
	if len(a.customers) != len(b.customers) || len(a.audit) != len(b.audit) {
		t.Fatalf("%s: %d customers and %d audit entries, against %d and %d", what, len(a.customers), len(a.audit), len(b.customers), len(b.audit))
	}
	for i := range a.customers {
		if a.customers[i] != b.customers[i] {
			t.Fatalf("%s: customer row %d differs:\n%s\n%s", what, i, a.customers[i], b.customers[i])
		}
	}
	for i := range a.audit {
		if a.audit[i] != b.audit[i] {
			t.Fatalf("%s: audit entry %d differs:\n%s\n%s", what, i, a.audit[i], b.audit[i])
		}
	}
}

// TestIncrementalReadModelsEqualFullRebuild runs random command sequences
// (the demo generator walks customers of all three lifecycles through their
// lifecycles with concurrent writers) while the projections follow the log
// in small batches, then rebuilds both projections from the start of the log
// and expects the same rows, row for row. Each row must also equal the state
// the command side folds from the customer's stream.
func TestIncrementalReadModelsEqualFullRebuild(t *testing.T) {
	for name, newStore := range readStores {
		for _, seed := range []uint64{1, 2} {
			t.Run(fmt.Sprintf("%s/seed%d", name, seed), func(t *testing.T) {
				w := newWorld(t, newStore(t), 7)
				w.start(t)
				if err := demo.Seed(w.ctx, w.svc, 120, 8, seed, nil); err != nil {
					t.Fatal(err)
				}
				w.waitCaughtUp(t)
				incremental := takeSnapshot(t, w.store)
				if len(incremental.customers) != 120 {
					t.Fatalf("%d customers in the list, want 120", len(incremental.customers))
				}
				for _, p := range []string{projections.CustomersProjection, projections.AuditProjection} {
					if err := w.engine.Rebuild(w.ctx, p, nil); err != nil {
						t.Fatal(err)
					}
				}
				w.waitCaughtUp(t)
				sameSnapshots(t, "incremental against rebuild", incremental, takeSnapshot(t, w.store))

				page, err := w.store.ListCustomers(w.ctx, projections.ListQuery{PerPage: 100}.Normalized())
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range page.Rows {
					folded, err := w.svc.Get(w.ctx, superuser, r.Customer.ID)
					if err != nil {
						t.Fatal(err)
					}
					a, _ := json.Marshal(folded)
					b, _ := json.Marshal(r.Customer)
					if string(a) != string(b) {
						t.Fatalf("read model and command side disagree on %s:\n%s\n%s", r.Customer.ID, b, a)
					}
				}
			})
		}
	}
}

// TestRebuildKeepsReadsOnline loops over the list while projections are
// rebuilt: no read may fail or come back empty.
func TestRebuildKeepsReadsOnline(t *testing.T) {
	for name, newStore := range readStores {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, newStore(t), 50)
			w.start(t)
			if err := demo.Seed(w.ctx, w.svc, 200, 8, 3, nil); err != nil {
				t.Fatal(err)
			}
			w.waitCaughtUp(t)
			var (
				reads  atomic.Int64
				failed atomic.Value
				wg     sync.WaitGroup
			)
			stop := make(chan struct{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					page, err := w.reader.List(w.ctx, superuser, projections.ListQuery{})
					switch {
					case err != nil:
						failed.Store(err.Error())
						return
					case page.Total != 200 || len(page.Rows) != projections.DefaultPerPage:
						failed.Store(fmt.Sprintf("total %d, %d rows", page.Total, len(page.Rows)))
						return
					}
					reads.Add(1)
				}
			}()
			for range 3 {
				var progress []projections.RebuildProgress
				if err := w.engine.Rebuild(w.ctx, projections.CustomersProjection, func(p projections.RebuildProgress) {
					progress = append(progress, p)
				}); err != nil {
					t.Fatal(err)
				}
				last := progress[len(progress)-1]
				if !last.Done || last.Applied == 0 || last.Applied < last.Total {
					t.Fatalf("last progress report %+v", last)
				}
			}
			close(stop)
			wg.Wait()
			if f := failed.Load(); f != nil {
				t.Fatalf("a read during the rebuild failed: %v", f)
			}
			if reads.Load() == 0 {
				t.Fatal("no read ran during the rebuilds")
			}
			t.Logf("%d list reads during 3 rebuilds", reads.Load())
		})
	}
}

// TestReadYourWrites waits for the revision a command returned, and times
// out with the revision the read model holds when the engine is not running.
func TestReadYourWrites(t *testing.T) {
	w := newWorld(t, readmemory.New(), 100)
	opts := domain.Options{Caller: superuser}
	res, err := w.svc.Register(w.ctx, domain.RegisterCustomer{Company: "acme", Name: &domain.Name{First: "Ada", Last: "Lovelace"}, Nationality: "GB"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	id := res.Customer.ID
	rev := res.Customer.Revision
	_, err = w.reader.Customer(w.ctx, superuser, id, &rev)
	var te *projections.RevisionTimeoutError
	if !errors.As(err, &te) || te.HaveAny {
		t.Fatalf("before the engine runs: %v, want a timeout that holds no revision", err)
	}
	w.start(t)
	res, err = w.svc.Execute(w.ctx, id, domain.AddNote{Text: "called the customer"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	rev = res.Customer.Revision
	row, err := w.reader.Customer(w.ctx, superuser, id, &rev)
	if err != nil {
		t.Fatal(err)
	}
	if row.Customer.Revision < rev || len(row.Customer.Notes) != 1 {
		t.Fatalf("read revision %d with %d notes, want %d with the note", row.Customer.Revision, len(row.Customer.Notes), rev)
	}
	future := rev + 5
	_, err = w.reader.Customer(w.ctx, superuser, id, &future)
	if !errors.As(err, &te) || !te.HaveAny || te.Have != rev || te.Want != future {
		t.Fatalf("waiting for a revision that never comes: %v", err)
	}
}

// batchSizes records the largest batch applied live and in a rebuild; a
// rebuild's batch waits a little, so that the next one finds the feed full.
type batchSizes struct {
	mu            sync.Mutex
	live, rebuild int
}

func (o *batchSizes) Applied(_ string, batch []domain.RecordedEvent, _ time.Duration, rebuilding bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if rebuilding {
		o.rebuild = max(o.rebuild, len(batch))
		time.Sleep(time.Millisecond)
		return
	}
	o.live = max(o.live, len(batch))
}
func (o *batchSizes) Lag(string, int64, float64) {}
func (o *batchSizes) Held(string, time.Duration) {}

// batcher is a store that asks for rebuild batches of its own size.
type batcher struct {
	projections.Store
	size int
}

func (b batcher) RebuildBatchSize() int { return b.size }

// A rebuild applies batches up to RebuildBatchSize, or the store's size when
// that is not set; a live runner up to BatchSize.
func TestRebuildBatchSize(t *testing.T) {
	for _, c := range []struct {
		name        string
		config, own int
		// the largest rebuild batch is within [lo, hi]
		lo, hi int
	}{
		{"configured", 40, 0, 10, 40},
		{"the store's", 0, 40, 10, 40},
		{"configured over the store's", 40, 9, 10, 40},
		{"the store's, below BatchSize", 0, 3, 1, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			svc, events := enginetest.NewService(t)
			var store projections.Store = readmemory.New()
			if c.own > 0 {
				store = batcher{store, c.own}
			}
			customers, err := projections.NewCustomers(store, svc.Codec(), svc.Lifecycles())
			if err != nil {
				t.Fatal(err)
			}
			obs := &batchSizes{}
			engine, err := projections.NewEngine(projections.EngineConfig{Events: events, Store: store, Observer: obs,
				Projections: []projections.Projection{customers}, BatchSize: 7, RebuildBatchSize: c.config})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer func() { cancel(); engine.Wait() }()
			if err := demo.Seed(ctx, svc, 60, 4, 9, nil); err != nil {
				t.Fatal(err)
			}
			if err := engine.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if err := engine.Rebuild(ctx, projections.CustomersProjection, nil); err != nil {
				t.Fatal(err)
			}
			obs.mu.Lock()
			defer obs.mu.Unlock()
			if obs.live == 0 || obs.live > 7 {
				t.Errorf("largest live batch %d events, want 1 to 7", obs.live)
			}
			if obs.rebuild < c.lo || obs.rebuild > c.hi {
				t.Errorf("largest rebuild batch %d events, want %d to %d", obs.rebuild, c.lo, c.hi)
			}
		})
	}
}

// customersV2 is the customers projection as a later release would ship it:
// the same rows, under a new version number.
type customersV2 struct{ *projections.Customers }

func (customersV2) Version() int { return 2 }

// A release whose projection has a new version rebuilds it on start, in a
// new generation, while the generation the old version built serves reads;
// then reads move to the new one, which holds what the old one did.
func TestNewProjectionVersionRebuildsOnStart(t *testing.T) {
	for name, newStore := range readStores {
		t.Run(name, func(t *testing.T) {
			store := newStore(t)
			w := newWorld(t, store, 16)
			if err := demo.Seed(w.ctx, w.svc, 40, 4, 9, nil); err != nil {
				t.Fatal(err)
			}
			w.start(t)
			w.waitCaughtUp(t)
			before := takeSnapshot(t, store)
			old, ok, err := store.State(w.ctx, projections.CustomersProjection)
			if err != nil || !ok || old.Version != 1 {
				t.Fatalf("first release: %+v %v %v", old, ok, err)
			}
			// The first release stops; the next one starts on the same stores.
			w.stop()

			customers, err := projections.NewCustomers(store, w.svc.Codec(), w.svc.Lifecycles())
			if err != nil {
				t.Fatal(err)
			}
			gate := make(chan struct{})
			engine, err := projections.NewEngine(projections.EngineConfig{Events: w.events, Store: store, BatchSize: 16,
				Projections: []projections.Projection{customersV2{customers}}, Observer: &rebuildGate{open: gate}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer func() { cancel(); engine.Wait() }()
			if err := engine.Start(ctx); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for rebuilding := false; !rebuilding; time.Sleep(5 * time.Millisecond) {
				sts, err := engine.Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if rebuilding = sts[0].Rebuild != nil; !rebuilding && time.Now().After(deadline) {
					t.Fatalf("no rebuild started: %+v", sts[0])
				}
			}
			// While the rebuild is held at its first batch, reads are the
			// old version's.
			if st, _, err := store.State(ctx, projections.CustomersProjection); err != nil || st.Active != old.Active || st.Version != 1 {
				t.Fatalf("during the rebuild: %+v %v, want generation %d of version 1 serving reads", st, err, old.Active)
			}
			sameSnapshots(t, "during the rebuild", before, takeSnapshot(t, store))
			close(gate)
			for {
				st, _, err := store.State(ctx, projections.CustomersProjection)
				if err != nil {
					t.Fatal(err)
				}
				if st.Version == 2 {
					if st.Active == old.Active || st.Checkpoint != old.Checkpoint {
						t.Fatalf("after the rebuild: %+v, before %+v", st, old)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no rebuild to version 2: %+v", st)
				}
				time.Sleep(10 * time.Millisecond)
			}
			sameSnapshots(t, "after the rebuild", before, takeSnapshot(t, store))
		})
	}
}

// rebuildGate holds a rebuild's first batch until open is closed.
type rebuildGate struct{ open chan struct{} }

func (g *rebuildGate) Applied(_ string, _ []domain.RecordedEvent, _ time.Duration, rebuilding bool) {
	if rebuilding {
		<-g.open
	}
}
func (*rebuildGate) Lag(string, int64, float64) {}
func (*rebuildGate) Held(string, time.Duration) {}
