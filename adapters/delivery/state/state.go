// Package state keeps what delivery to the outside needs to remember across
// restarts: how far each relay has published the log, and the webhook
// endpoints with their pending and past deliveries (the tables of package
// webhook, which works on [Store.DB] in [Store.Dialect]). It lives in its own
// SQLite file in the data folder (delivery.db) or in PostgreSQL beside the
// read models, and unlike the read models it cannot be rebuilt: losing it
// means publishing the whole log again (consumers deduplicate on event id,
// so that is noisy but not wrong).
package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"

	"github.com/kycengine/kyc/adapters/internal/pgmigrate"
	"github.com/kycengine/kyc/adapters/internal/sqlitefile"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/schemas"
)

// ErrSchemaVersion: the database was migrated by a newer binary.
var ErrSchemaVersion = errors.New("delivery state schema version mismatch")

// Dialect is the SQL dialect of the database under a Store.
type Dialect string

// The dialects. Table names differ too: PostgreSQL's carry the "kyc_"
// prefix ([Dialect.TablePrefix]), because there the tables share a database
// with the read models and whatever else the deployment keeps.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// TablePrefix is what the dialect's delivery tables are named with.
func (d Dialect) TablePrefix() string {
	if d == Postgres {
		return "kyc_"
	}
	return ""
}

// Store is the delivery state of one deployment.
type Store struct {
	db       *sql.DB
	dialect  Dialect
	describe string
	load     string
	save     string
}

const (
	sqliteVersionTable   = "delivery_goose_version"
	postgresVersionTable = "kyc_delivery_goose_version"
	// postgresLockID is the advisory lock the migrations run under ("kyc_deli").
	postgresLockID int64 = 0x6b79635f64656c69
	busyTimeout          = 5 * time.Second
)

// OpenSQLite opens (creating and migrating it if needed) the delivery state
// file at path.
func OpenSQLite(ctx context.Context, path string) (*Store, error) {
	abs, err := sqlitefile.CheckPath(path)
	if err != nil {
		return nil, fmt.Errorf("delivery state: %w", err)
	}
	db, err := sqlitefile.Open(abs, "", []string{
		"busy_timeout(" + strconv.FormatInt(busyTimeout.Milliseconds(), 10) + ")",
		"journal_mode(WAL)",
		// A checkpoint lost to a power cut only republishes a few events.
		"synchronous(NORMAL)",
	}, true)
	if err != nil {
		return nil, fmt.Errorf("delivery state: open %s: %w", abs, err)
	}
	db.SetMaxOpenConns(1)
	store, err := database.NewStore(database.DialectSQLite3, sqliteVersionTable)
	if err == nil {
		var p *goose.Provider
		p, err = goose.NewProvider(goose.DialectCustom, db, schemas.Migrations("sqlite-delivery"),
			goose.WithStore(store), goose.WithDisableGlobalRegistry(true))
		if err == nil {
			err = sqlitefile.Migrate(ctx, p, abs, ErrSchemaVersion)
		}
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("delivery state: %w", err)
	}
	return &Store{
		db: db, dialect: SQLite, describe: abs,
		load: `SELECT commit_pos, prepare FROM delivery_checkpoints WHERE name = ?`,
		save: `INSERT INTO delivery_checkpoints (name, commit_pos, prepare, updated_at) VALUES (?, ?, ?, ?)
		       ON CONFLICT (name) DO UPDATE SET commit_pos = excluded.commit_pos, prepare = excluded.prepare, updated_at = excluded.updated_at`,
	}, nil
}

// OpenPostgres opens the delivery state in the PostgreSQL database at url,
// migrating its tables first (under an advisory lock, so processes that
// start together take turns).
func OpenPostgres(ctx context.Context, url string) (*Store, error) {
	cc, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("delivery state: %w", err)
	}
	err = pgmigrate.Up(ctx, cc, pgmigrate.Schema{Migrations: schemas.Migrations("postgres-delivery"), VersionTable: postgresVersionTable, LockID: postgresLockID})
	if errors.Is(err, pgmigrate.ErrNewer) {
		return nil, fmt.Errorf("delivery state: %w: %w", ErrSchemaVersion, err)
	}
	if err != nil {
		return nil, fmt.Errorf("delivery state: migrate: %w", err)
	}
	db := stdlib.OpenDB(*cc)
	db.SetMaxOpenConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("delivery state: %w: %w", domain.ErrStoreUnavailable, err)
	}
	return &Store{
		db: db, dialect: Postgres, describe: "postgres",
		load: `SELECT commit_pos, prepare FROM kyc_delivery_checkpoints WHERE name = $1`,
		save: `INSERT INTO kyc_delivery_checkpoints (name, commit_pos, prepare, updated_at) VALUES ($1, $2, $3, $4)
		       ON CONFLICT (name) DO UPDATE SET commit_pos = excluded.commit_pos, prepare = excluded.prepare, updated_at = excluded.updated_at`,
	}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// DB is the migrated database, for the packages that keep their own tables
// in the delivery state (webhook). The SQLite pool has a single connection,
// so its users must not hold rows open while running another statement.
func (s *Store) DB() *sql.DB { return s.db }

// Dialect says which SQL the database speaks.
func (s *Store) Dialect() Dialect { return s.dialect }

// String names the database (the SQLite file's path, or "postgres"), for
// logs.
func (s *Store) String() string { return s.describe }

// Checkpoint is the position up to which the named consumer has delivered
// the log (domain.Start when it never saved one).
func (s *Store) Checkpoint(ctx context.Context, name string) (domain.Position, error) {
	var commit, prepare int64
	err := s.db.QueryRowContext(ctx, s.load, name).Scan(&commit, &prepare)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.Start, nil
	}
	if err != nil {
		return domain.Start, fmt.Errorf("delivery state: checkpoint of %s: %w", name, err)
	}
	return domain.Position{Commit: uint64(commit), Prepare: uint64(prepare)}, nil
}

// SaveCheckpoint records that the named consumer has delivered the log up
// to pos.
func (s *Store) SaveCheckpoint(ctx context.Context, name string, pos domain.Position) error {
	// Positions fit in int64: SQLite's are row ids, PostgreSQL's are
	// transaction ids and sequence values, KurrentDB's are byte offsets.
	if _, err := s.db.ExecContext(ctx, s.save, name, int64(pos.Commit), int64(pos.Prepare), time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		return fmt.Errorf("delivery state: save checkpoint of %s: %w", name, err)
	}
	return nil
}
