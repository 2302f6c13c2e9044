package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/kycengine/kyc/schemas"
)

// versionTable is goose's bookkeeping table. The event store may share the
// database and keeps goose's default table for its own migrations.
const versionTable = "kyc_read_goose_version"

// migrationLockID is the advisory lock the read-model migrations run under:
// "kyc_read" in ASCII, so it differs from goose's default, which the event
// store's migrations may hold at the same time.
const migrationLockID int64 = 0x6b79635f72656164

// Migrate brings the read-model schema of the database at url to the newest
// version this binary knows. Several processes may call it at once: they take
// turns on a PostgreSQL advisory lock. A database migrated by a newer binary
// is refused with ErrSchemaVersion.
func Migrate(ctx context.Context, url string) error {
	// Parsed as the pool parses it, so that pool settings in the URL
	// (pool_max_conns, ...) are not sent to the server as parameters.
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("postgres read model: migrate: %w", err)
	}
	db := stdlib.OpenDB(*pcfg.ConnConfig)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, schemas.Migrations("postgres-read"),
		goose.WithTableName(versionTable),
		goose.WithSessionLocker(advisoryLock{id: migrationLockID}),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("postgres read model: migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("postgres read model: migrate: %w", err)
	}
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("postgres read model: schema version: %w", err)
	}
	if current != target {
		return fmt.Errorf("%w: the database is at read-model schema version %d, this binary knows version %d",
			ErrSchemaVersion, current, target)
	}
	return nil
}

// advisoryLock is a goose session locker that waits on pg_advisory_lock
// rather than polling pg_try_advisory_lock as goose's own does: the
// processes that start together proceed as soon as the first one has
// migrated, not at the next poll a second or more later. The lock belongs to
// the session, so a process that dies mid-migration releases it.
type advisoryLock struct{ id int64 }

var _ lock.SessionLocker = advisoryLock{}

func (l advisoryLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", l.id); err != nil {
		return fmt.Errorf("advisory lock: %w", err)
	}
	return nil
}

func (l advisoryLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	var released bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", l.id).Scan(&released); err != nil {
		return fmt.Errorf("advisory unlock: %w", err)
	}
	if !released {
		return errors.New("advisory unlock: the session did not hold the lock")
	}
	return nil
}
