// Package sqlitefile opens SQLite files the way every SQLite adapter of the
// engine does (the embedded event store, the read models): one path check and
// one DSN builder, so pragmas and locking behave the same everywhere.
package sqlitefile

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
)

// CheckPath makes path absolute and checks that it names a regular file (or
// nothing yet) in an existing folder.
func CheckPath(path string) (string, error) {
	if path == "" {
		return "", errors.New("empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if fi, err := os.Stat(abs); err == nil && !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s: not a regular file", abs)
	}
	if fi, err := os.Stat(filepath.Dir(abs)); err != nil {
		return "", fmt.Errorf("%s: %w", abs, err)
	} else if !fi.IsDir() {
		return "", fmt.Errorf("%s: %s is not a directory", abs, filepath.Dir(abs))
	}
	return abs, nil
}

// Open opens a connection pool on the file. mode is SQLite's URI mode ("" or
// "ro"); pragmas run in order on every new connection, so busy_timeout goes
// first (switching to WAL then waits for another process's reader instead of
// failing). immediate makes BEGIN take the write lock at once: taking it at
// the first write could fail with SQLITE_BUSY that no waiting cures.
func Open(path, mode string, pragmas []string, immediate bool) (*sql.DB, error) {
	q := url.Values{}
	if mode != "" {
		q.Set("mode", mode)
	}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	if immediate {
		q.Set("_txlock", "immediate")
	}
	dsn := (&url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: q.Encode()}).String()
	connector, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(connector), nil
}

// Migrate brings the file at path to the newest schema of p and checks that
// it got there; errVersion is the caller's sentinel for a schema mismatch.
func Migrate(ctx context.Context, p *goose.Provider, path string, errVersion error) error {
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate %s: %w", path, err)
	}
	return checkVersions(ctx, p, path, errVersion)
}

// CheckSchema refuses a file whose schema is not p's newest, without
// changing it: readers of a file another process writes must not migrate it.
func CheckSchema(ctx context.Context, p *goose.Provider, path string, errVersion error) error {
	pending, err := p.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("%s has no readable schema: %w", path, err)
	}
	if pending {
		return fmt.Errorf("%w: %s has migrations pending; open it for writing once to migrate", errVersion, path)
	}
	return checkVersions(ctx, p, path, errVersion)
}

func checkVersions(ctx context.Context, p *goose.Provider, path string, errVersion error) error {
	current, target, err := p.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("schema version of %s: %w", path, err)
	}
	if current != target {
		return fmt.Errorf("%w: %s is at schema version %d, this binary knows version %d", errVersion, path, current, target)
	}
	return nil
}
