package projections_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kycengine/kyc/adapters/demo"
	"github.com/kycengine/kyc/adapters/enginetest"
	readmemory "github.com/kycengine/kyc/adapters/readmodel/memory"
	"github.com/kycengine/kyc/projections"
)

// leaseTable is an in-memory lease service shared by several engines, as a
// database's advisory locks are shared by several processes.
type leaseTable struct {
	mu      sync.Mutex
	held    map[string]context.CancelFunc
	changed chan struct{}
}

func newLeaseTable() *leaseTable {
	return &leaseTable{held: map[string]context.CancelFunc{}, changed: make(chan struct{})}
}

func (l *leaseTable) Acquire(ctx context.Context, name string) (context.Context, func(), error) {
	for {
		l.mu.Lock()
		if _, taken := l.held[name]; !taken {
			held, cancel := context.WithCancel(ctx)
			l.held[name] = cancel
			l.mu.Unlock()
			var once sync.Once
			return held, func() {
				once.Do(func() {
					cancel()
					l.mu.Lock()
					delete(l.held, name)
					close(l.changed)
					l.changed = make(chan struct{})
					l.mu.Unlock()
				})
			}, nil
		}
		wait := l.changed
		l.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-wait:
		}
	}
}

// revoke ends a hold the way a dropped database connection does.
func (l *leaseTable) revoke(name string) {
	l.mu.Lock()
	cancel := l.held[name]
	l.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// TestLeaseMovesBetweenEngines runs two engines ("processes") on one event
// store and one read-model store. Each projection runs in exactly one of
// them; when its lease is lost, or its holder stops, the other carries on
// from the committed checkpoint, and the read models still equal a rebuild.
func TestLeaseMovesBetweenEngines(t *testing.T) {
	svc, events := enginetest.NewService(t)
	store := readmemory.New()
	leases := newLeaseTable()
	newEngine := func() *projections.Engine {
		customers, err := projections.NewCustomers(store, svc.Codec(), svc.Lifecycles())
		if err != nil {
			t.Fatal(err)
		}
		audit, err := projections.NewAudit(store, svc.Codec())
		if err != nil {
			t.Fatal(err)
		}
		e, err := projections.NewEngine(projections.EngineConfig{Events: events, Store: store,
			Projections: []projections.Projection{customers, audit}, BatchSize: 13, Leases: leases})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	ctxA, stopA := context.WithCancel(t.Context())
	ctxB, stopB := context.WithCancel(t.Context())
	a, b := newEngine(), newEngine()
	t.Cleanup(func() { stopA(); stopB(); a.Wait(); b.Wait() })
	if err := a.Start(ctxA); err != nil {
		t.Fatal(err)
	}
	// a takes both leases before b exists, so which engine runs what is known.
	waitFor(t, "a to run both projections", func() bool {
		return a.RunsHere(projections.CustomersProjection) && a.RunsHere(projections.AuditProjection)
	})
	if err := b.Start(ctxB); err != nil {
		t.Fatal(err)
	}
	if err := demo.Seed(t.Context(), svc, 60, 4, 11, nil); err != nil {
		t.Fatal(err)
	}
	if b.RunsHere(projections.CustomersProjection) {
		t.Fatal("b runs the customers projection while a holds its lease")
	}
	waitCaughtUp(t, a)

	// A lost lease (a stalled connection): the runner stops and some
	// engine, here or there, resumes.
	leases.revoke("projection:" + projections.CustomersProjection)
	if err := demo.Seed(t.Context(), svc, 40, 4, 12, nil); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, b)

	// a dies: b runs everything.
	stopA()
	a.Wait()
	waitFor(t, "b to run both projections", func() bool {
		return b.RunsHere(projections.CustomersProjection) && b.RunsHere(projections.AuditProjection)
	})
	if err := demo.Seed(t.Context(), svc, 30, 4, 13, nil); err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, b)
	incremental := takeSnapshot(t, store)
	if len(incremental.customers) != 130 {
		t.Fatalf("%d customers in the list, want 130", len(incremental.customers))
	}
	for _, p := range []string{projections.CustomersProjection, projections.AuditProjection} {
		if err := b.Rebuild(ctxB, p, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitCaughtUp(t, b)
	sameSnapshots(t, "after the lease moved, against a rebuild", incremental, takeSnapshot(t, store))
	if err := a.Rebuild(t.Context(), projections.CustomersProjection, nil); !errors.Is(err, projections.ErrRunsElsewhere) {
		t.Fatalf("rebuild on a stopped engine: %v, want ErrRunsElsewhere", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitCaughtUp(t *testing.T, e *projections.Engine) {
	t.Helper()
	waitFor(t, "the projections to catch up", func() bool {
		sts, err := e.Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sts {
			if s.LagEvents != 0 || s.Rebuild != nil || s.Error != "" || s.Generation == 0 {
				return false
			}
		}
		return true
	})
}
