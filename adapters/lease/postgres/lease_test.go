package postgres_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kycengine/kyc/adapters/lease/postgres"
	"github.com/kycengine/kyc/adapters/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func newLeases(t *testing.T, url string) *postgres.Leases {
	t.Helper()
	l, err := postgres.New(postgres.Config{URL: url, RetryInterval: 50 * time.Millisecond, CheckInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// acquireAsync returns a channel that yields the hold once it is taken.
func acquireAsync(ctx context.Context, l *postgres.Leases, name string) <-chan context.Context {
	out := make(chan context.Context, 1)
	go func() {
		held, _, err := l.Acquire(ctx, name)
		if err == nil {
			out <- held
		}
	}()
	return out
}

func TestOneHolderAndHandOver(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a, b := newLeases(t, url), newLeases(t, url)
	ctx := t.Context()
	heldA, releaseA, err := a.Acquire(ctx, "projection:customers")
	if err != nil {
		t.Fatal(err)
	}
	waiting := acquireAsync(ctx, b, "projection:customers")
	select {
	case <-waiting:
		t.Fatal("two processes hold one lease")
	case <-time.After(300 * time.Millisecond):
	}
	// Another lease name is independent.
	otherCtx, cancelOther := context.WithTimeout(ctx, 2*time.Second)
	defer cancelOther()
	if _, release, err := b.Acquire(otherCtx, "projection:audit"); err != nil {
		t.Fatalf("a different lease: %v", err)
	} else {
		defer release()
	}
	releaseA()
	if heldA.Err() == nil {
		t.Fatal("the hold's context is still live after release")
	}
	select {
	case <-waiting:
	case <-time.After(5 * time.Second):
		t.Fatal("the lease did not move after release")
	}
}

// A holder whose session dies (as when its process is killed) loses the
// lease: its context ends and a waiting process takes over.
func TestLostSessionMovesLease(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a, b := newLeases(t, url), newLeases(t, url)
	ctx := t.Context()
	heldA, releaseA, err := a.Acquire(ctx, "projection:customers")
	if err != nil {
		t.Fatal(err)
	}
	defer releaseA()
	waiting := acquireAsync(ctx, b, "projection:customers")
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var killed int
	if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d sessions holding advisory locks, want 1", killed)
	}
	select {
	case <-heldA.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the holder did not notice it lost its session")
	}
	select {
	case <-waiting:
	case <-time.After(5 * time.Second):
		t.Fatal("the lease did not move to the waiting process")
	}
}

func TestAcquireGivesUpWithContext(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a, b := newLeases(t, url), newLeases(t, url)
	_, release, err := a.Acquire(t.Context(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, _, err := b.Acquire(ctx, "x"); err == nil {
		t.Fatal("acquired a held lease")
	}
}

func TestNewRejectsBadURL(t *testing.T) {
	if _, err := postgres.New(postgres.Config{URL: "postgres://%zz"}); err == nil {
		t.Fatal("accepted a malformed URL")
	}
}
