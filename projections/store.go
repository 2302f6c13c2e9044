package projections

import (
	"context"

	"github.com/kycengine/kyc/domain"
)

// Store is the read-model store port. Every adapter (SQLite, PostgreSQL)
// passes the shared conformance suite in adapters/readmodel/readtest.
//
// A projection's rows live in generations. Exactly one generation per
// projection is active and serves reads; a rebuild fills another one from
// the start of the log and then activates it. Each generation has exactly one
// writer at a time (the engine), so loading rows outside the write
// transaction and writing them back inside it cannot lose an update.
type Store interface {
	// State reports a projection; ok is false when it has no active
	// generation yet.
	State(ctx context.Context, name string) (state ProjectionState, ok bool, err error)
	// CreateGeneration makes empty tables for a new generation of the named
	// projection, built by the given version of its logic, with its
	// checkpoint at the start of the log. It does not activate it.
	CreateGeneration(ctx context.Context, name string, version int) (Generation, error)
	// Checkpoint is the position of the last event a generation applied.
	Checkpoint(ctx context.Context, name string, gen Generation) (domain.Position, error)
	// Activate makes gen the generation reads use, atomically, and drops the
	// one it replaces once no read uses it any more.
	Activate(ctx context.Context, name string, gen Generation) error
	// DropGeneration removes a generation that is not active (an abandoned
	// rebuild).
	DropGeneration(ctx context.Context, name string, gen Generation) error

	// LoadCustomers returns the stored rows of the given customers in a
	// generation of the customers projection; ids it does not hold are left
	// out of the map.
	LoadCustomers(ctx context.Context, gen Generation, ids []string) (map[string]CustomerRow, error)
	// PutCustomers inserts or replaces rows and moves the generation's
	// checkpoint to checkpoint, in one transaction. Rows may be empty.
	PutCustomers(ctx context.Context, gen Generation, checkpoint domain.Position, rows []CustomerRow) error
	// AuditCompanies returns the company of each given customer that the
	// audit generation has seen register.
	AuditCompanies(ctx context.Context, gen Generation, customerIDs []string) (map[string]string, error)
	// AppendAudit adds entries and moves the generation's checkpoint, in one
	// transaction. Entries may be empty.
	AppendAudit(ctx context.Context, gen Generation, checkpoint domain.Position, entries []AuditEntry) error

	// Customer reads one row of the active customers generation
	// (ErrNotFound when there is none).
	Customer(ctx context.Context, id string) (CustomerRow, error)
	// ListCustomers runs a normalized list query on the active generation.
	ListCustomers(ctx context.Context, q ListQuery) (ListPage, error)
	// Audit runs a normalized audit query on the active generation, newest
	// entry first.
	Audit(ctx context.Context, q AuditQuery) (AuditPage, error)
}

// RebuildBatcher is implemented by stores that fill a rebuilding generation
// faster in batches of another size than the engine's BatchSize: no read
// waits on a rebuild's batches, and a store whose commit rewrites index
// pages that the next batch changes again gains from fewer, larger ones.
type RebuildBatcher interface {
	RebuildBatchSize() int
}
