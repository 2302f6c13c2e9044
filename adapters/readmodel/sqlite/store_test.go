package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kycengine/kyc/adapters/readmodel/readtest"
	"github.com/kycengine/kyc/adapters/readmodel/sqlite"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	readtest.Run(t, func(t *testing.T) projections.Store {
		return open(t, filepath.Join(t.TempDir(), "read.db"))
	})
}

// TestReopen holds the active generation and checkpoints to survive a
// restart, and a read-only store to see what the writer does.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "read.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := s.CreateGeneration(ctx, projections.CustomersProjection, 4)
	if err != nil {
		t.Fatal(err)
	}
	row := projections.CustomerRow{Customer: &domain.Customer{ID: "c1", CompanyID: "acme", Status: "pending"}}
	if err := s.PutCustomers(ctx, gen, domain.Position{Commit: 3, Prepare: 3}, []projections.CustomerRow{row}); err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(ctx, projections.CustomersProjection, gen); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path)
	st, ok, err := s.State(ctx, projections.CustomersProjection)
	if err != nil || !ok || st.Active != gen || st.Version != 4 || st.Checkpoint.Commit != 3 {
		t.Fatalf("state after reopen: %+v ok %v err %v", st, ok, err)
	}
	if _, err := s.Customer(ctx, "c1"); err != nil {
		t.Fatalf("customer after reopen: %v", err)
	}

	ro, err := sqlite.OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.Customer(ctx, "c1"); err != nil {
		t.Fatalf("customer through the read-only store: %v", err)
	}
	if _, err := ro.CreateGeneration(ctx, projections.CustomersProjection, 1); !errors.Is(err, sqlite.ErrReadOnly) {
		t.Fatalf("create generation on the read-only store: %v, want ErrReadOnly", err)
	}
	// The writer swaps generations; the read-only store follows.
	next, err := s.CreateGeneration(ctx, projections.CustomersProjection, 5)
	if err != nil {
		t.Fatal(err)
	}
	row.Customer = &domain.Customer{ID: "c2", CompanyID: "acme"}
	if err := s.PutCustomers(ctx, next, domain.Position{Commit: 4, Prepare: 4}, []projections.CustomerRow{row}); err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(ctx, projections.CustomersProjection, next); err != nil {
		t.Fatal(err)
	}
	if _, err := ro.Customer(ctx, "c2"); err != nil {
		t.Fatalf("customer of the new generation through the read-only store: %v", err)
	}
	if st, ok, err := ro.State(ctx, projections.CustomersProjection); err != nil || !ok || st.Active != next || st.Version != 5 {
		t.Fatalf("read-only state: %+v ok %v err %v", st, ok, err)
	}
	if _, err := ro.ListCustomers(ctx, projections.ListQuery{}.Normalized()); err != nil {
		t.Fatal(err)
	}

	if _, err := sqlite.OpenReadOnly(context.Background(), filepath.Join(t.TempDir(), "missing.db")); err == nil {
		t.Fatal("read-only open of a missing file: no error")
	}
}

// TestCheckpointsAfterWrites: the writer leaves the WAL to a checkpointer of
// its own, so committed pages must reach the database file while the store
// stays open (without it they would stay in the WAL until Close).
func TestCheckpointsAfterWrites(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "read.db")
	s := open(t, path)
	gen, err := s.CreateGeneration(ctx, projections.CustomersProjection, 1)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the checkpoint of the generation's tables
	before := fileSize(t, path)
	rows := make([]projections.CustomerRow, 2000)
	for i := range rows {
		rows[i] = projections.CustomerRow{Customer: &domain.Customer{ID: fmt.Sprintf("c%05d", i), CompanyID: "acme", Status: "pending",
			Notes: []domain.Note{{ID: "n", Text: strings.Repeat("note ", 100)}}}}
	}
	if err := s.PutCustomers(ctx, gen, domain.Position{Commit: 1, Prepare: 1}, rows); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); fileSize(t, path) < before+1<<20; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("read.db is %d bytes, %d before writing 2000 rows: the WAL was not checkpointed", fileSize(t, path), before)
		}
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
