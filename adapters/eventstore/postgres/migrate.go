package postgres

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/kycengine/kyc/schemas"
)

// versionTable is goose's table for this schema; the read-model store may
// keep its own migrations in the same database under another name.
const versionTable = "kyc_events_goose_version"

// migrationLockID is the advisory lock that serialises migrations of the
// event store's schema across processes: the first letters of "kycevent"
// in ASCII, so no other user of the database picks it by accident.
const migrationLockID int64 = 0x6b79636576656e74

// Migrate brings the event store's schema in the database at url up to date
// and returns, for a `kyc migrate` command. Open does the same on its own.
func Migrate(ctx context.Context, url string) error {
	cfg, err := parseConfig(url)
	if err != nil {
		return err
	}
	return migrate(ctx, cfg.ConnConfig)
}

func migrate(ctx context.Context, cc *pgx.ConnConfig) error {
	db := stdlib.OpenDB(*cc)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, schemas.Migrations("postgres"),
		goose.WithTableName(versionTable),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSessionLocker(advisoryLock{}))
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: %w", classify(ctx, err))
	}
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: schema version: %w", classify(ctx, err))
	}
	if current != target {
		return fmt.Errorf("postgres: migrate: %w: the database is at schema version %d, this binary knows version %d",
			ErrSchemaVersion, current, target)
	}
	return nil
}

// advisoryLock holds a session-level advisory lock while goose migrates on
// the same connection. It waits in pg_advisory_lock rather than polling with
// pg_try_advisory_lock as goose's own locker does, so a process that opens
// the store while another migrates goes on as soon as that one is done.
type advisoryLock struct{}

func (advisoryLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrationLockID); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	return nil
}

func (advisoryLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", migrationLockID); err != nil {
		return fmt.Errorf("release the migration lock: %w", err)
	}
	return nil
}
