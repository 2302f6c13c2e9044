package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/kycengine/kyc/adapters/internal/pgmigrate"
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
	err := pgmigrate.Up(ctx, cc, pgmigrate.Schema{Migrations: schemas.Migrations("postgres"), VersionTable: versionTable, LockID: migrationLockID})
	if errors.Is(err, pgmigrate.ErrNewer) {
		return fmt.Errorf("postgres: migrate: %w: %w", ErrSchemaVersion, err)
	}
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", classify(ctx, err))
	}
	return nil
}
