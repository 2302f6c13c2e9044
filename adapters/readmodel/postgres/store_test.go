package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kycengine/kyc/adapters/pgtest"
	"github.com/kycengine/kyc/adapters/readmodel/postgres"
	"github.com/kycengine/kyc/adapters/readmodel/readtest"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t *testing.T, url string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	readtest.Run(t, func(t *testing.T) projections.Store {
		return open(t, pgtest.NewDatabase(t))
	})
}

// The conformance suite again with the active generation read per query.
func TestConformanceWithoutNotify(t *testing.T) {
	readtest.Run(t, func(t *testing.T) projections.Store {
		return open(t, pgtest.NewDatabase(t), postgres.WithoutNotify())
	})
}

func row(id, company string) projections.CustomerRow {
	return projections.CustomerRow{Customer: &domain.Customer{ID: id, CompanyID: company, Status: "pending",
		Name: &domain.Name{First: "Ana", Last: id}, CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)}}
}

func pos(n uint64) domain.Position { return domain.Position{Commit: n, Prepare: n} }

// fill makes a customers generation holding rows and activates it.
func fill(t *testing.T, s *postgres.Store, p domain.Position, rows ...projections.CustomerRow) projections.Generation {
	t.Helper()
	ctx := t.Context()
	gen, err := s.CreateGeneration(ctx, projections.CustomersProjection, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutCustomers(ctx, gen, p, rows); err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(ctx, projections.CustomersProjection, gen); err != nil {
		t.Fatal(err)
	}
	return gen
}

// sees holds s to serve exactly the customer id from its active generation.
func sees(t *testing.T, s *postgres.Store, id string) {
	t.Helper()
	if _, err := s.Customer(t.Context(), id); err != nil {
		t.Fatalf("customer %s: %v", id, err)
	}
	page, err := s.ListCustomers(t.Context(), projections.ListQuery{}.Normalized())
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 1 || len(page.Rows) != 1 || page.Rows[0].Customer.ID != id {
		t.Fatalf("list: total %d, rows %d, want only %s", page.Total, len(page.Rows), id)
	}
}

// A process that did not activate a generation reads it as soon as the
// activating one returns, whether it caches the active generation or not.
func TestOtherProcessSeesActivation(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []postgres.Option
	}{{"notify", nil}, {"per-query", []postgres.Option{postgres.WithoutNotify()}}} {
		t.Run(tc.name, func(t *testing.T) {
			url := pgtest.NewDatabase(t)
			writer, reader := open(t, url), open(t, url, tc.opts...)
			ctx := t.Context()
			if _, err := reader.Customer(ctx, "a"); !errors.Is(err, projections.ErrNotFound) {
				t.Fatalf("customer before any generation: %v, want ErrNotFound", err)
			}
			g1 := fill(t, writer, pos(1), row("a", "acme"))
			sees(t, reader, "a")
			for i := range 5 {
				id := fmt.Sprintf("b%d", i)
				g := fill(t, writer, pos(uint64(2+i)), row(id, "acme"))
				// No pause: the reader may still hold the replaced number.
				sees(t, reader, id)
				st, ok, err := reader.State(ctx, projections.CustomersProjection)
				if err != nil || !ok || st.Active != g || st.Active <= g1 {
					t.Fatalf("state through the reader: %+v ok %v err %v, want generation %d", st, ok, err, g)
				}
			}
		})
	}
}

// Fencing: a writer whose checkpoint was moved by another writer cannot
// write until it has read the checkpoint again.
func TestFencing(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a, b := open(t, url), open(t, url)
	ctx := t.Context()
	gen, err := a.CreateGeneration(ctx, projections.CustomersProjection, 1)
	if err != nil {
		t.Fatal(err)
	}
	// The creator writes a fresh generation without reading it first.
	if err := a.PutCustomers(ctx, gen, pos(5), []projections.CustomerRow{row("a1", "acme")}); err != nil {
		t.Fatal(err)
	}
	// b never read the checkpoint: it is not the writer.
	if err := b.PutCustomers(ctx, gen, pos(6), []projections.CustomerRow{row("b0", "acme")}); !errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("put by a store that never read the checkpoint: %v, want ErrFenced", err)
	}
	// b takes over, as a process that won the lease does.
	if p, err := b.Checkpoint(ctx, projections.CustomersProjection, gen); err != nil || p != pos(5) {
		t.Fatalf("checkpoint: %v, %v", p, err)
	}
	if err := b.PutCustomers(ctx, gen, pos(7), []projections.CustomerRow{row("b1", "acme")}); err != nil {
		t.Fatal(err)
	}
	// a, the writer that lost its lease, is refused and writes nothing.
	if err := a.PutCustomers(ctx, gen, pos(8), []projections.CustomerRow{row("a2", "acme")}); !errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("put by the replaced writer: %v, want ErrFenced", err)
	}
	if err := a.PutCustomers(ctx, gen, pos(8), nil); !errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("empty put by the replaced writer: %v, want ErrFenced", err)
	}
	got, err := b.LoadCustomers(ctx, gen, []string{"a1", "a2", "b0", "b1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["a2"]; ok || len(got) != 2 {
		t.Fatalf("rows after the fenced put: %v, want a1 and b1", got)
	}
	if p, err := b.Checkpoint(ctx, projections.CustomersProjection, gen); err != nil || p != pos(7) {
		t.Fatalf("checkpoint after the fenced put: %v, %v; want %v", p, err, pos(7))
	}
	// Resuming from the stored checkpoint is what the engine does next.
	if p, err := a.Checkpoint(ctx, projections.CustomersProjection, gen); err != nil || p != pos(7) {
		t.Fatalf("checkpoint: %v, %v", p, err)
	}
	if err := a.PutCustomers(ctx, gen, pos(9), []projections.CustomerRow{row("a3", "acme")}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutCustomers(ctx, gen, pos(10), nil); !errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("put by b after a took back over: %v, want ErrFenced", err)
	}

	// The audit projection is fenced the same way.
	ag, err := a.CreateGeneration(ctx, projections.AuditProjection, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Checkpoint(ctx, projections.AuditProjection, ag); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendAudit(ctx, ag, pos(3), nil); err != nil {
		t.Fatal(err)
	}
	if err := a.AppendAudit(ctx, ag, pos(4), nil); !errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("append by the replaced audit writer: %v, want ErrFenced", err)
	}

	// A generation that is gone is not a fencing matter.
	if err := a.DropGeneration(ctx, projections.AuditProjection, ag); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendAudit(ctx, ag, pos(5), nil); !errors.Is(err, postgres.ErrNoGeneration) {
		t.Fatalf("append to a dropped generation: %v, want ErrNoGeneration", err)
	}
}

// A writer keeps what it wrote of recent rows, to diff the next write of
// them against; a writer that takes over (or back) must not use what it
// knew from before another writer's writes. Here a stale cache would leave
// the tag b's write added behind.
func TestTakeOverForgetsRowsKnownBefore(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a, b := open(t, url), open(t, url)
	ctx := t.Context()
	tagged := func(tag string) projections.CustomerRow {
		r := row("x", "acme")
		r.Customer.Tags = []string{tag}
		return r
	}
	gen := fill(t, a, pos(1), tagged("by-a"))
	if _, err := b.Checkpoint(ctx, projections.CustomersProjection, gen); err != nil {
		t.Fatal(err)
	}
	if err := b.PutCustomers(ctx, gen, pos(2), []projections.CustomerRow{tagged("by-b")}); err != nil {
		t.Fatal(err)
	}
	// a takes back over (its lease came back) without having been refused.
	if _, err := a.Checkpoint(ctx, projections.CustomersProjection, gen); err != nil {
		t.Fatal(err)
	}
	if err := a.PutCustomers(ctx, gen, pos(3), []projections.CustomerRow{tagged("by-a-again")}); err != nil {
		t.Fatal(err)
	}
	for tag, want := range map[string]int{"by-a": 0, "by-b": 0, "by-a-again": 1} {
		page, err := b.ListCustomers(ctx, projections.ListQuery{Tags: []string{tag}}.Normalized())
		if err != nil {
			t.Fatal(err)
		}
		if page.Total != want || len(page.Rows) != want {
			t.Errorf("tag %s: total %d, rows %d; want %d", tag, page.Total, len(page.Rows), want)
		}
	}
}

// Two writers that read the same checkpoint and then write at once: one
// wins, the other is fenced, and the checkpoint is the winner's.
func TestFencingRace(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a, b := open(t, url), open(t, url)
	ctx := t.Context()
	gen, err := a.CreateGeneration(ctx, projections.CustomersProjection, 1)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 10 {
		for _, s := range []*postgres.Store{a, b} {
			if _, err := s.Checkpoint(ctx, projections.CustomersProjection, gen); err != nil {
				t.Fatal(err)
			}
		}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, s := range []*postgres.Store{a, b} {
			wg.Go(func() {
				p := pos(uint64(100*round + 10*i + 1))
				errs[i] = s.PutCustomers(ctx, gen, p, []projections.CustomerRow{row(fmt.Sprintf("r%d-%d", round, i), "acme")})
			})
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil && won < 0:
				won = i
			case err == nil:
				t.Fatalf("round %d: both writers wrote", round)
			case !errors.Is(err, postgres.ErrFenced):
				t.Fatalf("round %d: writer %d: %v", round, i, err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: no writer wrote: %v", round, errs)
		}
		p, err := a.Checkpoint(ctx, projections.CustomersProjection, gen)
		if err != nil || p != pos(uint64(100*round+10*won+1)) {
			t.Fatalf("round %d: checkpoint %v, %v; writer %d won", round, p, err, won)
		}
	}
}

// A replaced generation that a query holds cannot be dropped at once:
// Activate still returns promptly, other processes move to the new
// generation, and the old tables go once they are free.
func TestActivateWhileOldGenerationIsRead(t *testing.T) {
	url := pgtest.NewDatabase(t)
	opts := []postgres.Option{postgres.WithDropRetry(100*time.Millisecond, 2)}
	writer := open(t, url, opts...)
	notified, perQuery := open(t, url), open(t, url, postgres.WithoutNotify())
	ctx := t.Context()
	g1 := fill(t, writer, pos(1), row("a", "acme"))
	sees(t, notified, "a")

	// A long read on the old generation, as another process could run.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf("SELECT count(*) FROM read_customers_g%d", g1)); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	g2 := fill(t, writer, pos(2), row("b", "acme"))
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("activate took %v while the old generation was read", took)
	}
	if !tableExists(t, conn, g1) {
		t.Fatal("the old generation was dropped under a running read")
	}
	sees(t, perQuery, "b")
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := notified.Customer(ctx, "b")
		if err == nil && c.Customer.ID == "b" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the notified reader still does not see generation %d: %v", g2, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	sees(t, notified, "b")
	st, _, err := writer.State(ctx, projections.CustomersProjection)
	if err != nil || st.Active != g2 || len(st.Building) != 0 {
		t.Fatalf("state with the old generation not dropped yet: %+v, %v", st, err)
	}

	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// The next activation sweeps what was left.
	fill(t, writer, pos(3), row("c", "acme"))
	if tableExists(t, conn, g1) || tableExists(t, conn, g2) {
		t.Fatal("replaced generations still have tables")
	}
	sees(t, notified, "c")
}

func tableExists(t *testing.T, conn *pgx.Conn, gen projections.Generation) bool {
	t.Helper()
	var n int
	err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_tables WHERE tablename = $1",
		fmt.Sprintf("read_customers_g%d", gen)).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// The active generation, checkpoints and rows survive a restart; a
// restarted writer reads its checkpoint before it writes again.
func TestReopen(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := t.Context()
	s, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := s.CreateGeneration(ctx, projections.CustomersProjection, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutCustomers(ctx, gen, pos(3), []projections.CustomerRow{row("c1", "acme")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(ctx, projections.CustomersProjection, gen); err != nil {
		t.Fatal(err)
	}
	building, err := s.CreateGeneration(ctx, projections.CustomersProjection, 5)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Customer(ctx, "c1"); !errors.Is(err, postgres.ErrClosed) {
		t.Fatalf("read after close: %v, want ErrClosed", err)
	}

	s = open(t, url)
	st, ok, err := s.State(ctx, projections.CustomersProjection)
	if err != nil || !ok || st.Active != gen || st.Version != 4 || st.Checkpoint != pos(3) ||
		len(st.Building) != 1 || st.Building[0] != building {
		t.Fatalf("state after reopen: %+v ok %v err %v", st, ok, err)
	}
	sees(t, s, "c1")
	if err := s.PutCustomers(ctx, gen, pos(4), nil); !errors.Is(err, postgres.ErrFenced) {
		t.Fatalf("put before reading the checkpoint: %v, want ErrFenced", err)
	}
	if _, err := s.Checkpoint(ctx, projections.CustomersProjection, gen); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCustomers(ctx, gen, pos(4), []projections.CustomerRow{row("c2", "acme")}); err != nil {
		t.Fatal(err)
	}
	if page, err := s.ListCustomers(ctx, projections.ListQuery{}.Normalized()); err != nil || page.Total != 2 {
		t.Fatalf("list after reopen and put: %+v, %v", page, err)
	}
	if g, err := s.CreateGeneration(ctx, projections.CustomersProjection, 5); err != nil || g <= building {
		t.Fatalf("generation after reopen: %d, %v; want more than %d", g, err, building)
	}
}

// Processes that start together on a new database all migrate it without
// error: the advisory lock lets one do it and the others find it done.
func TestConcurrentOpen(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), url)
			if err == nil {
				_, _, err = s.State(t.Context(), projections.CustomersProjection)
				err = errors.Join(err, s.Close())
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := postgres.Migrate(t.Context(), url); err != nil {
		t.Fatalf("migrate a migrated database: %v", err)
	}
}

// Two processes swap generations under readers of both: no read fails.
func TestReadsDuringSwapsByAnotherProcess(t *testing.T) {
	url := pgtest.NewDatabase(t)
	writer := open(t, url)
	var retries countHandler
	log := postgres.WithLogger(slog.New(&retries))
	readers := []*postgres.Store{open(t, url, log), open(t, url, log, postgres.WithoutNotify())}
	rows := make([]projections.CustomerRow, 30)
	for i := range rows {
		rows[i] = row(fmt.Sprintf("c%02d", i), "acme")
	}
	fill(t, writer, pos(1), rows...)
	ctx := t.Context()
	stop := make(chan struct{})
	errs := make(chan error, len(readers))
	var wg sync.WaitGroup
	for _, r := range readers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				page, err := r.ListCustomers(ctx, projections.ListQuery{Q: "ana", PerPage: 20}.Normalized())
				if err == nil && (page.Total != len(rows) || len(page.Rows) != 20) {
					err = fmt.Errorf("list during swap: total %d, %d rows", page.Total, len(page.Rows))
				}
				if err == nil {
					_, err = r.Customer(ctx, "c07")
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := range 15 {
		fill(t, writer, pos(uint64(i+2)), rows...)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("reads retried on the new generation: %d", retries.n.Load())
}

// countHandler counts debug records: the store's reports of reads retried
// on a new generation.
type countHandler struct{ n atomic.Int64 }

func (h *countHandler) Enabled(_ context.Context, l slog.Level) bool { return l == slog.LevelDebug }
func (h *countHandler) Handle(context.Context, slog.Record) error {
	h.n.Add(1)
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

// TestDocumentsCompressWithLZ4: the customer documents are stored with lz4
// when the server has it, unless the URL names another method.
func TestDocumentsCompressWithLZ4(t *testing.T) {
	for _, tc := range []struct{ param, want string }{{"", "lz4"}, {"default_toast_compression=pglz", "pglz"}} {
		t.Run(tc.want, func(t *testing.T) {
			url := pgtest.NewDatabase(t)
			s := open(t, url+"&"+tc.param)
			big := row("c-big", "acme")
			for i := range 100 {
				big.Customer.Emails = append(big.Customer.Emails, fmt.Sprintf("someone.%03d@example.com", i))
			}
			gen := fill(t, s, pos(1), big)
			conn, err := pgx.Connect(t.Context(), url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(t.Context())
			var method string
			if err := conn.QueryRow(t.Context(), fmt.Sprintf(`SELECT coalesce(pg_column_compression(doc), 'none') FROM read_customer_docs_g%d`, gen)).Scan(&method); err != nil {
				t.Fatal(err)
			}
			if method != tc.want {
				t.Fatalf("document compressed with %s, want %s", method, tc.want)
			}
		})
	}
}
