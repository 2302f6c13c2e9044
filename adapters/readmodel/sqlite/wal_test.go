package sqlite

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// A writer that never pauses leaves the background checkpointer no moment
// at which the whole WAL is copied, so SQLite never starts the WAL over;
// the writer's own checkpoint at walLimit pages must bound it.
func TestWALStaysBoundedUnderContinuousWrites(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "read.db")
	const limit = 100 // pages
	s, err := open(ctx, path, time.Hour, limit)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gen, err := s.CreateGeneration(ctx, projections.CustomersProjection, 1)
	if err != nil {
		t.Fatal(err)
	}
	const batches, perBatch = 30, 200
	note := strings.Repeat("a long note ", 170) // 2 KB
	for b := range batches {
		rows := make([]projections.CustomerRow, perBatch)
		for i := range rows {
			rows[i] = projections.CustomerRow{Customer: &domain.Customer{ID: fmt.Sprintf("c%02d-%03d", b, i), CompanyID: "acme", Status: "pending",
				Notes: []domain.Note{{ID: "n", Text: note}}}}
		}
		if err := s.PutCustomers(ctx, gen, domain.Position{Commit: uint64(b + 1), Prepare: uint64(b + 1)}, rows); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	// 12 MB of notes went through; the WAL may hold the limit plus a batch.
	if fi.Size() > 3<<20 {
		t.Errorf("the WAL is %d bytes after %d batches; it was never started over", fi.Size(), batches)
	}
}

// Rows of a generation that serves no reads (a rebuild) make the
// checkpointer wait longer between rounds; rows of the active one do not.
func TestRebuildWritesMarkBulk(t *testing.T) {
	ctx := t.Context()
	s, err := open(ctx, filepath.Join(t.TempDir(), "read.db"), time.Hour, walLimitPages)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(gen projections.Generation, n uint64) {
		t.Helper()
		row := projections.CustomerRow{Customer: &domain.Customer{ID: "c1", CompanyID: "acme", Status: "pending"}}
		if err := s.PutCustomers(ctx, gen, domain.Position{Commit: n, Prepare: n}, []projections.CustomerRow{row}); err != nil {
			t.Fatal(err)
		}
	}
	gen, err := s.CreateGeneration(ctx, projections.CustomersProjection, 1)
	if err != nil {
		t.Fatal(err)
	}
	put(gen, 1)
	if s.lastBulk.Load() == 0 {
		t.Fatal("rows of a generation being built were not noted as bulk")
	}
	if err := s.Activate(ctx, projections.CustomersProjection, gen); err != nil {
		t.Fatal(err)
	}
	s.lastBulk.Store(0)
	put(gen, 2)
	if s.lastBulk.Load() != 0 {
		t.Fatal("rows of the active generation were noted as bulk")
	}
}
