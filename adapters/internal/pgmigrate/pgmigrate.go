// Package pgmigrate runs an adapter's goose migrations on PostgreSQL the way
// every PostgreSQL adapter of the engine does: under an advisory lock, so
// that several processes starting at once take turns, with a version table
// of the adapter's own, so that several adapters may share one database.
package pgmigrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Schema names one adapter's migrations.
type Schema struct {
	Migrations fs.FS
	// VersionTable is goose's bookkeeping table for these migrations.
	VersionTable string
	// LockID is the advisory lock the migrations run under.
	LockID int64
}

// ErrNewer: the database was migrated by a newer binary.
var ErrNewer = errors.New("the database schema is newer than this binary")

// Up migrates the database that cc connects to. A database at a newer
// version than the migrations know is refused with an error wrapping
// ErrNewer; the caller wraps it in its own sentinel.
func Up(ctx context.Context, cc *pgx.ConnConfig, s Schema) error {
	db := stdlib.OpenDB(*cc)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, s.Migrations,
		goose.WithTableName(s.VersionTable),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSessionLocker(advisoryLock{id: s.LockID}))
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return err
	}
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("schema version: %w", err)
	}
	if current != target {
		return fmt.Errorf("%w: the database is at schema version %d, this binary knows version %d", ErrNewer, current, target)
	}
	return nil
}

// advisoryLock is a goose session locker that waits on pg_advisory_lock
// rather than polling pg_try_advisory_lock as goose's own does: processes
// that start together proceed as soon as the first one has migrated, not at
// the next poll a second or more later. The lock belongs to the session, so
// a process that dies mid-migration releases it.
type advisoryLock struct{ id int64 }

var _ lock.SessionLocker = advisoryLock{}

func (l advisoryLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", l.id); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	return nil
}

func (l advisoryLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	var released bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", l.id).Scan(&released); err != nil {
		return fmt.Errorf("release the migration lock: %w", err)
	}
	if !released {
		return errors.New("release the migration lock: the session did not hold it")
	}
	return nil
}
