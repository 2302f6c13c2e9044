package state

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kycengine/kyc/adapters/pgtest"
	"github.com/kycengine/kyc/domain"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// The same checks for both databases.
func TestCheckpoints(t *testing.T) {
	stores := map[string]func(t *testing.T) *Store{
		"sqlite": func(t *testing.T) *Store {
			s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "delivery.db"))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
		"postgres": func(t *testing.T) *Store {
			s, err := OpenPostgres(t.Context(), pgtest.NewDatabase(t))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			defer s.Close()
			ctx := context.Background()
			if p, err := s.Checkpoint(ctx, "relay"); err != nil || p != domain.Start {
				t.Fatalf("checkpoint before any save: %v %v, want Start", p, err)
			}
			for _, want := range []domain.Position{{Commit: 7, Prepare: 7}, {Commit: 1 << 40, Prepare: 3}, {Commit: 1<<63 - 1, Prepare: 1<<63 - 1}} {
				if err := s.SaveCheckpoint(ctx, "relay", want); err != nil {
					t.Fatal(err)
				}
				if got, err := s.Checkpoint(ctx, "relay"); err != nil || got != want {
					t.Fatalf("checkpoint %v %v, want %v", got, err, want)
				}
			}
			if p, err := s.Checkpoint(ctx, "other"); err != nil || p != domain.Start {
				t.Fatalf("another consumer's checkpoint: %v %v, want Start", p, err)
			}
		})
	}
}

// A file reopened keeps its checkpoints (and is not migrated twice).
func TestSQLiteReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "delivery.db")
	s, err := OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	want := domain.Position{Commit: 42, Prepare: 42}
	if err := s.SaveCheckpoint(t.Context(), "relay", want); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Checkpoint(t.Context(), "relay"); err != nil || got != want {
		t.Fatalf("after reopen: %v %v, want %v", got, err, want)
	}
}

// The webhook tables are migrated in both dialects, under the names
// Dialect.TablePrefix gives.
func TestWebhookTables(t *testing.T) {
	sqlite, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "delivery.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sqlite.Close()
	pg, err := OpenPostgres(t.Context(), pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	for _, s := range []*Store{sqlite, pg} {
		want := map[*Store]Dialect{sqlite: SQLite, pg: Postgres}[s]
		if s.Dialect() != want || s.DB() == nil {
			t.Fatalf("%s: dialect %q, want %q", s, s.Dialect(), want)
		}
		for _, table := range []string{"webhook_endpoints", "webhook_secrets", "webhook_customers", "webhook_deliveries", "webhook_attempts"} {
			var n int
			if err := s.DB().QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+s.Dialect().TablePrefix()+table).Scan(&n); err != nil {
				t.Errorf("%s: %s: %v", s, table, err)
			}
		}
	}
}
