package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kycengine/kyc/adapters/internal/pgmigrate"
	"github.com/kycengine/kyc/schemas"
)

// versionTable is goose's bookkeeping table. The event store may share the
// database and keeps its own migrations in a table of its own.
const versionTable = "kyc_read_goose_version"

// migrationLockID is the advisory lock the read-model migrations run under:
// "kyc_read" in ASCII, so it differs from the event store's, whose
// migrations may run at the same time.
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
	err = pgmigrate.Up(ctx, pcfg.ConnConfig, pgmigrate.Schema{Migrations: schemas.Migrations("postgres-read"), VersionTable: versionTable, LockID: migrationLockID})
	if errors.Is(err, pgmigrate.ErrNewer) {
		return fmt.Errorf("postgres read model: %w: %w", ErrSchemaVersion, err)
	}
	if err != nil {
		return fmt.Errorf("postgres read model: migrate: %w", err)
	}
	return nil
}
