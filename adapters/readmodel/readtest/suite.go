// Package readtest is the conformance suite of projections.Store: the
// definition of a correct read-model store. Every adapter's tests run it:
//
//	func TestConformance(t *testing.T) {
//		readtest.Run(t, func(t *testing.T) projections.Store {
//			s := open(t) // a fresh, empty store that closes itself through t.Cleanup
//			return s
//		})
//	}
//
// Each subtest asks for a fresh store, since generation numbers and the
// active generation are per store. The list and audit tests compare the
// store with an oracle: the filters and the order of package projections
// (ListQuery.Matches and Compare) applied in memory to random data.
package readtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// Run runs every conformance test against stores made by newStore.
func Run(t *testing.T, newStore func(t *testing.T) projections.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s projections.Store)
	}{
		{"StateBeforeAnything", testStateEmpty},
		{"UnknownProjection", testUnknownProjection},
		{"GenerationLifecycle", testGenerationLifecycle},
		{"AuditGenerations", testAuditGenerations},
		{"CheckpointMovesWithRows", testCheckpoint},
		{"RoundTrip", testRoundTrip},
		{"SeqKeptOnReplace", testSeq},
		{"ReplaceRewritesFilters", testReplace},
		{"ListOracle", testListOracle},
		{"AgeOnBirthdays", testAgeOnBirthdays},
		{"RangeEdges", testRangeEdges},
		{"AuditOracle", testAuditOracle},
		{"AuditCompanies", testAuditCompanies},
		{"ReadsDuringSwap", testReadsDuringSwap},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			if s == nil {
				t.Fatal("newStore returned nil")
			}
			tc.fn(t, s)
		})
	}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustCreate(t *testing.T, ctx context.Context, s projections.Store, name string, version int) projections.Generation {
	t.Helper()
	gen, err := s.CreateGeneration(ctx, name, version)
	if err != nil {
		t.Fatalf("create generation of %s: %v", name, err)
	}
	return gen
}

func mustPut(t *testing.T, ctx context.Context, s projections.Store, gen projections.Generation, p domain.Position, rows []projections.CustomerRow) {
	t.Helper()
	// A copy, so a store that writes Seq back cannot change the caller's data.
	if err := s.PutCustomers(ctx, gen, p, slices.Clone(rows)); err != nil {
		t.Fatalf("put %d customers in generation %d: %v", len(rows), gen, err)
	}
}

func mustActivate(t *testing.T, ctx context.Context, s projections.Store, name string, gen projections.Generation) {
	t.Helper()
	if err := s.Activate(ctx, name, gen); err != nil {
		t.Fatalf("activate %s generation %d: %v", name, gen, err)
	}
}

func mustState(t *testing.T, ctx context.Context, s projections.Store, name string) (projections.ProjectionState, bool) {
	t.Helper()
	st, ok, err := s.State(ctx, name)
	if err != nil {
		t.Fatalf("state of %s: %v", name, err)
	}
	return st, ok
}

func customers(seed uint64, n int) []projections.CustomerRow {
	rng := rand.New(rand.NewPCG(seed, 1))
	rows := make([]projections.CustomerRow, n)
	for i := range rows {
		rows[i] = randomCustomer(rng, i)
	}
	return rows
}

func pos(n uint64) domain.Position { return domain.Position{Commit: n, Prepare: n} }

func listAll(t *testing.T, ctx context.Context, s projections.Store) projections.ListPage {
	t.Helper()
	page, err := s.ListCustomers(ctx, projections.ListQuery{PerPage: 100}.Normalized())
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	return page
}

func testStateEmpty(t *testing.T, s projections.Store) {
	ctx := testCtx(t)
	for _, name := range []string{projections.CustomersProjection, projections.AuditProjection} {
		st, ok := mustState(t, ctx, s, name)
		if ok || st.Active != 0 || len(st.Building) != 0 {
			t.Fatalf("state of %s in an empty store: %+v, ok %v", name, st, ok)
		}
	}
	if _, err := s.Customer(ctx, "nobody"); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("customer in an empty store: %v, want ErrNotFound", err)
	}
	if page := listAll(t, ctx, s); page.Total != 0 || len(page.Rows) != 0 {
		t.Fatalf("list of an empty store: %+v", page)
	}
	if page, err := s.Audit(ctx, projections.AuditQuery{}.Normalized()); err != nil || page.Total != 0 || len(page.Entries) != 0 {
		t.Fatalf("audit of an empty store: %+v, %v", page, err)
	}
}

func testUnknownProjection(t *testing.T, s projections.Store) {
	ctx := testCtx(t)
	if _, err := s.CreateGeneration(ctx, "nope", 1); !errors.Is(err, projections.ErrUnknownProjection) {
		t.Fatalf("create generation of an unknown projection: %v, want ErrUnknownProjection", err)
	}
	if err := s.Activate(ctx, "nope", 1); !errors.Is(err, projections.ErrUnknownProjection) {
		t.Fatalf("activate an unknown projection: %v, want ErrUnknownProjection", err)
	}
}

func testGenerationLifecycle(t *testing.T, s projections.Store) {
	ctx := testCtx(t)
	g1 := mustCreate(t, ctx, s, projections.CustomersProjection, 1)
	g2 := mustCreate(t, ctx, s, projections.CustomersProjection, 2)
	if g2 <= g1 || g1 <= 0 {
		t.Fatalf("generations %d then %d, want positive and increasing", g1, g2)
	}
	st, ok := mustState(t, ctx, s, projections.CustomersProjection)
	if ok || !slices.Equal(st.Building, []projections.Generation{g1, g2}) {
		t.Fatalf("state with two building generations: %+v ok %v", st, ok)
	}
	if p, err := s.Checkpoint(ctx, projections.CustomersProjection, g1); err != nil || p != domain.Start {
		t.Fatalf("checkpoint of a new generation: %v, %v; want the start", p, err)
	}
	rows := customers(1, 30)
	a, b := rows[:10], rows[10:]
	mustPut(t, ctx, s, g1, pos(7), a)
	mustPut(t, ctx, s, g2, pos(9), b)

	mustActivate(t, ctx, s, projections.CustomersProjection, g1)
	st, ok = mustState(t, ctx, s, projections.CustomersProjection)
	if !ok || st.Active != g1 || st.Version != 1 || st.Checkpoint != pos(7) || !slices.Equal(st.Building, []projections.Generation{g2}) {
		t.Fatalf("state after activating %d: %+v ok %v", g1, st, ok)
	}
	if st.UpdatedAt.IsZero() || time.Since(st.UpdatedAt) > time.Hour || time.Until(st.UpdatedAt) > time.Hour {
		t.Fatalf("state's updated at %v, want about now", st.UpdatedAt)
	}
	checkReads(t, ctx, s, a, b)

	mustActivate(t, ctx, s, projections.CustomersProjection, g2)
	st, ok = mustState(t, ctx, s, projections.CustomersProjection)
	if !ok || st.Active != g2 || st.Version != 2 || st.Checkpoint != pos(9) || len(st.Building) != 0 {
		t.Fatalf("state after activating %d: %+v ok %v", g2, st, ok)
	}
	checkReads(t, ctx, s, b, a)
	if _, err := s.Checkpoint(ctx, projections.CustomersProjection, g1); err == nil {
		t.Fatalf("checkpoint of generation %d after it was replaced: no error", g1)
	}
	if err := s.PutCustomers(ctx, g1, pos(10), a); err == nil {
		t.Fatalf("put in generation %d after it was replaced: no error", g1)
	}

	if err := s.DropGeneration(ctx, projections.CustomersProjection, g2); err == nil {
		t.Fatal("drop of the active generation: no error")
	}
	checkReads(t, ctx, s, b, a)

	g3 := mustCreate(t, ctx, s, projections.CustomersProjection, 3)
	if g3 <= g2 {
		t.Fatalf("generation %d after %d: numbers must never be reused", g3, g2)
	}
	mustPut(t, ctx, s, g3, pos(11), a)
	if err := s.DropGeneration(ctx, projections.CustomersProjection, g3); err != nil {
		t.Fatalf("drop of building generation %d: %v", g3, err)
	}
	if _, err := s.Checkpoint(ctx, projections.CustomersProjection, g3); err == nil {
		t.Fatalf("checkpoint of dropped generation %d: no error", g3)
	}
	if st, _ := mustState(t, ctx, s, projections.CustomersProjection); len(st.Building) != 0 || st.Active != g2 {
		t.Fatalf("state after dropping %d: %+v", g3, st)
	}
	if g4 := mustCreate(t, ctx, s, projections.CustomersProjection, 3); g4 <= g3 {
		t.Fatalf("generation %d after dropped %d: numbers must never be reused", g4, g3)
	}
	checkReads(t, ctx, s, b, a)
	// The other projection is untouched.
	if _, ok := mustState(t, ctx, s, projections.AuditProjection); ok {
		t.Fatal("audit has an active generation nobody made")
	}
}

// checkReads holds the active generation to hold exactly the rows of in.
func checkReads(t *testing.T, ctx context.Context, s projections.Store, in, out []projections.CustomerRow) {
	t.Helper()
	for _, r := range in {
		got, err := s.Customer(ctx, r.Customer.ID)
		if err != nil {
			t.Fatalf("customer %s: %v", r.Customer.ID, err)
		}
		checkRow(t, r, got)
	}
	for _, r := range out {
		if _, err := s.Customer(ctx, r.Customer.ID); !errors.Is(err, projections.ErrNotFound) {
			t.Fatalf("customer %s of another generation: %v, want ErrNotFound", r.Customer.ID, err)
		}
	}
	page := listAll(t, ctx, s)
	if page.Total != len(in) || len(page.Rows) != min(len(in), 100) {
		t.Fatalf("list: total %d, %d rows; want %d", page.Total, len(page.Rows), len(in))
	}
}

func testAuditGenerations(t *testing.T, s projections.Store) {
	ctx := testCtx(t)
	g1 := mustCreate(t, ctx, s, projections.AuditProjection, 1)
	g2 := mustCreate(t, ctx, s, projections.AuditProjection, 1)
	rng := rand.New(rand.NewPCG(2, 2))
	companyOf := map[string]string{"c1": "acme", "c2": "globex"}
	var e1, e2 []projections.AuditEntry
	for i := range 5 {
		e1 = append(e1, randomEntry(rng, i, []string{"c1"}, companyOf))
	}
	for i := range 7 {
		e2 = append(e2, randomEntry(rng, i, []string{"c2"}, companyOf))
	}
	if err := s.AppendAudit(ctx, g1, pos(3), e1); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, g2, pos(4), e2); err != nil {
		t.Fatal(err)
	}
	audit := func() projections.AuditPage {
		t.Helper()
		page, err := s.Audit(ctx, projections.AuditQuery{}.Normalized())
		if err != nil {
			t.Fatal(err)
		}
		return page
	}
	if page := audit(); page.Total != 0 {
		t.Fatalf("audit before any activation: %+v", page)
	}
	mustActivate(t, ctx, s, projections.AuditProjection, g1)
	if page := audit(); page.Total != 5 || page.Entries[0].CustomerID != "c1" {
		t.Fatalf("audit of generation %d: %+v", g1, page)
	}
	mustActivate(t, ctx, s, projections.AuditProjection, g2)
	if page := audit(); page.Total != 7 || page.Entries[0].CustomerID != "c2" {
		t.Fatalf("audit of generation %d: %+v", g2, page)
	}
	if st, ok := mustState(t, ctx, s, projections.AuditProjection); !ok || st.Active != g2 || st.Checkpoint != pos(4) || len(st.Building) != 0 {
		t.Fatalf("audit state: %+v ok %v", st, ok)
	}
	if _, err := s.Checkpoint(ctx, projections.AuditProjection, g1); err == nil {
		t.Fatalf("checkpoint of replaced audit generation %d: no error", g1)
	}
	if err := s.DropGeneration(ctx, projections.AuditProjection, g2); err == nil {
		t.Fatal("drop of the active audit generation: no error")
	}
	if _, ok := mustState(t, ctx, s, projections.CustomersProjection); ok {
		t.Fatal("customers has an active generation nobody made")
	}
}

func testCheckpoint(t *testing.T, s projections.Store) {
	ctx := testCtx(t)
	gc := mustCreate(t, ctx, s, projections.CustomersProjection, 1)
	ga := mustCreate(t, ctx, s, projections.AuditProjection, 1)
	checkpoint := func(name string, gen projections.Generation, want domain.Position) {
		t.Helper()
		got, err := s.Checkpoint(ctx, name, gen)
		if err != nil || got != want {
			t.Fatalf("checkpoint of %s generation %d: %v, %v; want %v", name, gen, got, err, want)
		}
	}
	mustPut(t, ctx, s, gc, domain.Position{Commit: 5, Prepare: 4}, nil)
	checkpoint(projections.CustomersProjection, gc, domain.Position{Commit: 5, Prepare: 4})
	if err := s.AppendAudit(ctx, ga, pos(6), nil); err != nil {
		t.Fatal(err)
	}
	checkpoint(projections.AuditProjection, ga, pos(6))
	checkpoint(projections.CustomersProjection, gc, domain.Position{Commit: 5, Prepare: 4})

	rows := customers(3, 5)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.PutCustomers(canceled, gc, pos(9), slices.Clone(rows)); err == nil {
		t.Fatal("put with a canceled context: no error")
	}
	checkpoint(projections.CustomersProjection, gc, domain.Position{Commit: 5, Prepare: 4})
	if got, err := s.LoadCustomers(ctx, gc, []string{rows[0].Customer.ID}); err != nil || len(got) != 0 {
		t.Fatalf("rows after a canceled put: %v, %v", got, err)
	}
	e := randomEntry(rand.New(rand.NewPCG(3, 3)), 1, []string{"c"}, map[string]string{"c": "acme"})
	if err := s.AppendAudit(canceled, ga, pos(9), []projections.AuditEntry{e}); err == nil {
		t.Fatal("append audit with a canceled context: no error")
	}
	checkpoint(projections.AuditProjection, ga, pos(6))

	mustPut(t, ctx, s, gc, pos(12), rows)
	checkpoint(projections.CustomersProjection, gc, pos(12))
	mustActivate(t, ctx, s, projections.CustomersProjection, gc)
	if st, ok := mustState(t, ctx, s, projections.CustomersProjection); !ok || st.Checkpoint != pos(12) {
		t.Fatalf("state: %+v ok %v", st, ok)
	}
	// Writes keep moving the active generation's checkpoint.
	mustPut(t, ctx, s, gc, pos(13), nil)
	checkpoint(projections.CustomersProjection, gc, pos(13))
}

// checkRow holds got to be want as stored: the customer (as JSON, which is
// how equal customers are compared across a database) and derived fields.
func checkRow(t *testing.T, want, got projections.CustomerRow) {
	t.Helper()
	wj, err := json.Marshal(want.Customer)
	if err != nil {
		t.Fatal(err)
	}
	gj, err := json.Marshal(got.Customer)
	if err != nil {
		t.Fatal(err)
	}
	if string(wj) != string(gj) {
		t.Fatalf("customer %s read back as\n%s\nwant\n%s", want.Customer.ID, gj, wj)
	}
	if got.VerificationStatus != want.VerificationStatus || got.State != want.State || got.AggregatedStatus != want.AggregatedStatus {
		t.Fatalf("customer %s derived fields read back as %q %q %q, want %q %q %q", want.Customer.ID,
			got.VerificationStatus, got.State, got.AggregatedStatus, want.VerificationStatus, want.State, want.AggregatedStatus)
	}
	if got.Seq <= 0 {
		t.Fatalf("customer %s read back with seq %d", want.Customer.ID, got.Seq)
	}
}

func ids(rows []projections.CustomerRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Customer.ID
	}
	return out
}

func mustLoad(t *testing.T, ctx context.Context, s projections.Store, gen projections.Generation, ids []string) map[string]projections.CustomerRow {
	t.Helper()
	got, err := s.LoadCustomers(ctx, gen, ids)
	if err != nil {
		t.Fatalf("load %d customers: %v", len(ids), err)
	}
	return got
}

func testRoundTrip(t *testing.T, s projections.Store) {
	ctx := testCtx(t)
	gen := mustCreate(t, ctx, s, projections.CustomersProjection, 1)
	rows := customers(4, 600) // more than one IN list's worth for most stores
	for chunk := range slices.Chunk(rows, 300) {
		mustPut(t, ctx, s, gen, pos(1), chunk)
	}
	got := mustLoad(t, ctx, s, gen, append(ids(rows), "missing-1", "missing-2"))
	if len(got) != len(rows) {
		t.Fatalf("loaded %d customers, want %d", len(got), len(rows))
	}
	for _, r := range rows {
		checkRow(t, r, got[r.Customer.ID])
	}
	mustActivate(t, ctx, s, projections.CustomersProjection, gen)
	for _, r := range rows[:50] {
		c, err := s.Customer(ctx, r.Customer.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkRow(t, r, c)
		if c.Seq != got[r.Customer.ID].Seq {
			t.Fatalf("customer %s: seq %d, loaded %d", r.Customer.ID, c.Seq, got[r.Customer.ID].Seq)
		}
	}
	if none := mustLoad(t, ctx, s, gen, nil); len(none) != 0 {
		t.Fatalf("load of no ids: %v", none)
	}
}

func testSeq(t *testing.T, s projections.Store) {
	ctx := testCtx(t)
	gen := mustCreate(t, ctx, s, projections.CustomersProjection, 1)
	rows := customers(5, 8)
	mustPut(t, ctx, s, gen, pos(1), rows[:3])
	mustPut(t, ctx, s, gen, pos(2), rows[3:5])
	mustPut(t, ctx, s, gen, pos(3), rows[5:])
	got := mustLoad(t, ctx, s, gen, ids(rows))
	for i := 1; i < len(rows); i++ {
		if a, b := got[rows[i-1].Customer.ID].Seq, got[rows[i].Customer.ID].Seq; a >= b || a <= 0 {
			t.Fatalf("seqs %d then %d for customers put in that order, want positive and increasing", a, b)
		}
	}
	rng := rand.New(rand.NewPCG(5, 5))
	changed := []projections.CustomerRow{mutate(rng, rows[0]), mutate(rng, rows[6])}
	mustPut(t, ctx, s, gen, pos(4), changed)
	// The same customer twice in one put: the last one wins.
	twice := mutate(rng, rows[2])
	mustPut(t, ctx, s, gen, pos(5), []projections.CustomerRow{mutate(rng, rows[2]), twice})
	again := mustLoad(t, ctx, s, gen, ids(rows))
	for _, r := range rows {
		if again[r.Customer.ID].Seq != got[r.Customer.ID].Seq {
			t.Fatalf("customer %s: seq %d after replace, was %d", r.Customer.ID, again[r.Customer.ID].Seq, got[r.Customer.ID].Seq)
		}
	}
	checkRow(t, changed[0], again[changed[0].Customer.ID])
	checkRow(t, changed[1], again[changed[1].Customer.ID])
	checkRow(t, twice, again[twice.Customer.ID])
	mustActivate(t, ctx, s, projections.CustomersProjection, gen)
	if page := listAll(t, ctx, s); page.Total != len(rows) || len(page.Rows) != len(rows) {
		t.Fatalf("list after replaces: total %d, %d rows; want %d", page.Total, len(page.Rows), len(rows))
	}
}

// testReplace holds a replace to update what filters see, not only the row.
func testReplace(t *testing.T, s projections.Store) {
	ctx := testCtx(t)
	gen := mustCreate(t, ctx, s, projections.CustomersProjection, 1)
	rows := customers(6, 60)
	for i := range rows {
		// Full pages, so the total is counted rather than read off the page.
		rows[i].Customer.CompanyID = "acme"
		rows[i].Customer.Tags = []string{"old"}
		rows[i].Customer.Name = &domain.Name{First: "Zed", Last: fmt.Sprintf("Before%d", i)}
	}
	mustPut(t, ctx, s, gen, pos(1), rows)
	mustActivate(t, ctx, s, projections.CustomersProjection, gen)
	moved := make([]projections.CustomerRow, 25)
	for i := range moved {
		c := *rows[i].Customer
		c.CompanyID = "globex"
		c.Tags = []string{"new"}
		c.Name = &domain.Name{First: "Zed", Last: fmt.Sprintf("After%d", i)}
		moved[i] = projections.CustomerRow{Customer: &c, VerificationStatus: rows[i].VerificationStatus}
	}
	mustPut(t, ctx, s, gen, pos(2), moved)
	for _, tc := range []struct {
		q    projections.ListQuery
		want int
	}{
		{projections.ListQuery{}, 60},
		{projections.ListQuery{ScopeCompany: "acme"}, 35},
		{projections.ListQuery{ScopeCompany: "globex"}, 25},
		{projections.ListQuery{Companies: []string{"globex", "acme"}}, 60},
		{projections.ListQuery{ScopeCompany: "acme", Companies: []string{"globex"}}, 0},
		{projections.ListQuery{Tags: []string{"old"}}, 35},
		{projections.ListQuery{Tags: []string{"new"}}, 25},
		{projections.ListQuery{Q: "before"}, 35},
		{projections.ListQuery{Q: "after"}, 25},
		{projections.ListQuery{Q: "zed"}, 60},
	} {
		q := tc.q
		q.PerPage = 20
		page, err := s.ListCustomers(ctx, q.Normalized())
		if err != nil {
			t.Fatal(err)
		}
		if page.Total != tc.want || len(page.Rows) != min(tc.want, 20) {
			t.Fatalf("%+v after replace: total %d, %d rows; want %d", tc.q, page.Total, len(page.Rows), tc.want)
		}
	}
}

// oracle is what a store must answer: q applied in memory.
func oracle(q projections.ListQuery, all []projections.CustomerRow) (total int, page []string) {
	var match []projections.CustomerRow
	for _, r := range all {
		if q.Matches(r) {
			match = append(match, r)
		}
	}
	slices.SortStableFunc(match, q.Compare)
	from, to := min(q.Offset(), len(match)), min(q.Offset()+q.PerPage, len(match))
	return len(match), ids(match[from:to])
}

func describe(q projections.ListQuery) string {
	b, _ := json.Marshal(q)
	return string(b)
}

func testListOracle(t *testing.T, s projections.Store) {
	ctx := testCtx(t)
	gen := mustCreate(t, ctx, s, projections.CustomersProjection, 1)
	rng := rand.New(rand.NewPCG(7, 7))
	rows := customers(7, 400)
	// Some ties on every sort key, which Seq must break.
	for i := 0; i+1 < len(rows); i += 17 {
		rows[i+1].Customer.CreatedAt = rows[i].Customer.CreatedAt
		rows[i+1].Customer.Name = rows[i].Customer.Name
		rows[i+1].Customer.LastStatusUpdate = rows[i].Customer.LastStatusUpdate
	}
	for chunk := range slices.Chunk(rows, 150) {
		mustPut(t, ctx, s, gen, pos(1), chunk)
	}
	// Later events change some customers, their company included.
	for range 80 {
		i := rng.IntN(len(rows))
		rows[i] = mutate(rng, rows[i])
		mustPut(t, ctx, s, gen, pos(2), rows[i:i+1])
	}
	mustActivate(t, ctx, s, projections.CustomersProjection, gen)
	stored := mustLoad(t, ctx, s, gen, ids(rows))
	for i, r := range rows {
		rows[i].Seq = stored[r.Customer.ID].Seq
	}

	check := func(q projections.ListQuery) {
		t.Helper()
		q = q.Normalized()
		total, want := oracle(q, rows)
		page, err := s.ListCustomers(ctx, q)
		if err != nil {
			t.Fatalf("query %s: %v", describe(q), err)
		}
		if got := ids(page.Rows); page.Total != total || !slices.Equal(got, want) {
			t.Fatalf("query %s:\n got total %d, rows %v\nwant total %d, rows %v", describe(q), page.Total, got, total, want)
		}
		if page.Page != q.Page || page.PerPage != q.PerPage {
			t.Fatalf("query %s: page %d of %d, want %d of %d", describe(q), page.Page, page.PerPage, q.Page, q.PerPage)
		}
	}
	// Each filter alone, under every sort.
	for i, f := range filters {
		for _, key := range projections.SortKeys {
			for _, desc := range []bool{false, true} {
				q := projections.ListQuery{Sort: key, Desc: desc, PerPage: 20, Page: 1 + i%2, Now: now}
				f(rng, &q, rows)
				check(q)
			}
		}
	}
	// Random combinations.
	for range 200 {
		check(randomQuery(rng, rows))
	}
	// One value of each of several filters, taken from one customer so
	// that they meet, sometimes with a second value, on small pages so
	// that offsets fall inside the matches: what a store that intersects
	// filters index by index (PostgreSQL merges them in created order)
	// must get right, empty values included.
	for range 150 {
		r := pick(rng, rows)
		c := r.Customer
		first := func(vs, pool []string) []string {
			if len(vs) > 0 {
				return []string{vs[0]} // a copy: values are appended to it below
			}
			return []string{pick(rng, pool)}
		}
		docs := []string{pick(rng, docTypes)}
		if len(c.Documents) > 0 {
			docs = []string{c.Documents[0].Type}
		}
		ones := []func(q *projections.ListQuery){
			func(q *projections.ListQuery) { q.ScopeCompany = c.CompanyID },
			func(q *projections.ListQuery) { q.Companies = []string{c.CompanyID} },
			func(q *projections.ListQuery) { q.Statuses = []string{c.Status} },
			func(q *projections.ListQuery) { q.Risks = []string{c.Risk} },
			func(q *projections.ListQuery) { q.VideoCallStatuses = []string{c.VideoCallStatus} },
			func(q *projections.ListQuery) { q.VerificationLevels = []int{c.VerificationLevel} },
			func(q *projections.ListQuery) { q.VerificationStatuses = []string{r.VerificationStatus} },
			func(q *projections.ListQuery) { q.States = []string{r.State} },
			func(q *projections.ListQuery) { q.Nationalities = []string{c.Nationality} },
			func(q *projections.ListQuery) { q.Countries = []string{projections.Country(c)} },
			func(q *projections.ListQuery) { q.Agents = []string{c.CreatedByAgent} },
			func(q *projections.ListQuery) { q.ReferralCodes = []string{c.ReferralCode} },
			func(q *projections.ListQuery) { q.Tags = first(c.Tags, tags) },
			func(q *projections.ListQuery) { q.AccessRoles = first(c.AccessRoles, accessRoles) },
			func(q *projections.ListQuery) { q.AccessGroups = first(c.AccessGroups, accessGroups) },
			func(q *projections.ListQuery) { q.DocumentTypes = docs },
		}
		q := projections.ListQuery{Sort: pick(rng, projections.SortKeys), Desc: rng.IntN(2) == 0,
			PerPage: 1 + rng.IntN(3), Page: 1 + rng.IntN(4), Now: now}
		for _, i := range rng.Perm(len(ones))[:2+rng.IntN(3)] {
			ones[i](&q)
		}
		for _, f := range []struct {
			vals *[]string
			pool []string
		}{{&q.Companies, companies}, {&q.Statuses, statuses}, {&q.Risks, risks}, {&q.States, states},
			{&q.Nationalities, nationalities}, {&q.Countries, countries}, {&q.Agents, agents}, {&q.ReferralCodes, referrals},
			{&q.Tags, tags}, {&q.AccessRoles, accessRoles}, {&q.AccessGroups, accessGroups}, {&q.DocumentTypes, docTypes}} {
			if len(*f.vals) == 1 && rng.IntN(2) == 0 {
				if v := pick(rng, f.pool); v != (*f.vals)[0] {
					*f.vals = append(*f.vals, v)
				}
			}
		}
		if len(q.VerificationLevels) == 1 && rng.IntN(2) == 0 {
			q.VerificationLevels = append(q.VerificationLevels, (q.VerificationLevels[0]+1)%6)
		}
		if rng.IntN(3) == 0 {
			q.Created = timeRange(rng)
		}
		check(q)
	}
	// Every page of one query, which must cover the matches exactly once.
	q := projections.ListQuery{Sort: projections.SortName, PerPage: 20, Now: now}
	total, _ := oracle(q.Normalized(), rows)
	for q.Page = 1; q.Page <= total/20+1; q.Page += 2 {
		check(q)
	}
}

// listEdges stores rows and checks each query against the oracle: the
// deterministic edge cases that random data seldom reaches.
func listEdges(t *testing.T, s projections.Store, rows []projections.CustomerRow, queries []projections.ListQuery) {
	t.Helper()
	ctx := testCtx(t)
	gen := mustCreate(t, ctx, s, projections.CustomersProjection, 1)
	mustPut(t, ctx, s, gen, pos(1), rows)
	mustActivate(t, ctx, s, projections.CustomersProjection, gen)
	stored := mustLoad(t, ctx, s, gen, ids(rows))
	for i, r := range rows {
		rows[i].Seq = stored[r.Customer.ID].Seq
	}
	for _, q := range queries {
		q.PerPage, q.Now = 100, now
		q = q.Normalized()
		total, want := oracle(q, rows)
		page, err := s.ListCustomers(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(page.Rows); page.Total != total || !slices.Equal(got, want) {
			t.Errorf("query %s: got %v, want %v", describe(q), got, want)
		}
	}
}

func edgeCustomer(id string) *domain.Customer {
	return &domain.Customer{ID: id, CompanyID: "acme", Lifecycle: "onboarding", LifecycleVersion: 1, Status: "active",
		Emails: []string{}, Phones: []string{}, CreatedAt: now.Add(-time.Hour)}
}

// testRangeEdges: time ranges hold their start and not their end, date
// ranges hold both ends, and a search word matches the words it starts and
// not the first word after them, each tried on values a nanosecond, a day
// or a letter from the bound.
func testRangeEdges(t *testing.T, s projections.Store) {
	from, to := now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	var rows []projections.CustomerRow
	for i, at := range []time.Time{from.Add(-1), from, from.Add(1), to.Add(-1), to, to.Add(1)} {
		c := edgeCustomer(fmt.Sprintf("cus-time-%d", i))
		c.CreatedAt, c.LastStatusUpdate = at, &at
		rows = append(rows, projections.CustomerRow{Customer: c})
	}
	for i, day := range []string{"2026-12-31", "2027-01-01", "2027-01-02", "2027-01-30", "2027-01-31", "2027-02-01"} {
		c := edgeCustomer(fmt.Sprintf("cus-expiry-%d", i))
		c.Documents = []domain.Document{{ID: "d", Type: "PASSPORT", ExpiryDate: day}}
		rows = append(rows, projections.CustomerRow{Customer: c})
	}
	// Several documents each, one of them on or just before a bound: each
	// customer is still listed once.
	for i, days := range [][]string{{"2027-01-01", "2027-01-15"}, {"2026-12-31", "2027-01-15"}, {"2027-01-15", "2027-01-31", "2027-02-01"}} {
		c := edgeCustomer(fmt.Sprintf("cus-expiries-%d", i))
		for j, day := range days {
			c.Documents = append(c.Documents, domain.Document{ID: fmt.Sprintf("d%d", j), Type: "PASSPORT", ExpiryDate: day})
		}
		rows = append(rows, projections.CustomerRow{Customer: c})
	}
	for i, last := range []string{"Anm", "Ann", "Anna", "Annz", "Ano", "Anoa"} {
		c := edgeCustomer(fmt.Sprintf("cus-name-%d", i))
		c.Name = &domain.Name{First: "Eve", Last: last}
		rows = append(rows, projections.CustomerRow{Customer: c})
	}
	listEdges(t, s, rows, []projections.ListQuery{
		{Created: projections.TimeRange{From: from, To: to}},
		{Created: projections.TimeRange{From: from}},
		{Created: projections.TimeRange{To: to}},
		{Updated: projections.TimeRange{From: from, To: to}},
		{Updated: projections.TimeRange{From: from}},
		{Updated: projections.TimeRange{To: to}},
		{Expiry: projections.DateRange{From: "2027-01-01", To: "2027-01-31"}},
		{Expiry: projections.DateRange{From: "2027-01-01"}},
		{Expiry: projections.DateRange{To: "2027-01-31"}},
		{Expiry: projections.DateRange{From: "2027-01-31", To: "2027-01-31"}},
		{Q: "ann"},
		{Q: "an"},
		{Q: "anz"},
	})
}

// testAgeOnBirthdays: the age filter at its edges, which random data
// seldom reaches: customers who turn 30, 31 or 40 the day the query runs,
// the day before or the day after, on both sides of every bound.
func testAgeOnBirthdays(t *testing.T, s projections.Store) {
	var rows []projections.CustomerRow
	for _, years := range []int{29, 30, 31, 39, 40, 41} {
		for _, days := range []int{-1, 0, 1} {
			c := edgeCustomer(fmt.Sprintf("cus-%d%+d", years, days))
			c.BirthDate = now.AddDate(-years, 0, days).Format(time.DateOnly)
			rows = append(rows, projections.CustomerRow{Customer: c})
		}
	}
	thirty, forty := 30, 40
	listEdges(t, s, rows, []projections.ListQuery{
		{AgeMin: &thirty}, {AgeMax: &forty}, {AgeMin: &thirty, AgeMax: &forty},
		{AgeMin: &thirty, AgeMax: &thirty}, {AgeMin: &forty, AgeMax: &forty},
	})
}

func auditOracle(q projections.AuditQuery, all []projections.AuditEntry) (total int, page []string) {
	in := func(set []string, v string) bool { return len(set) == 0 || slices.Contains(set, v) }
	var match []projections.AuditEntry
	for _, e := range all {
		if (q.ScopeCompany == "" || e.CompanyID == q.ScopeCompany) && in(q.Customers, e.CustomerID) &&
			in(q.Actors, e.Actor.ID) && in(q.Types, e.Type) && in(q.Companies, e.CompanyID) &&
			(q.Time.IsZero() || q.Time.Contains(e.OccurredAt)) {
			match = append(match, e)
		}
	}
	slices.SortFunc(match, func(a, b projections.AuditEntry) int {
		switch {
		case a.Position.Less(b.Position):
			return 1
		case b.Position.Less(a.Position):
			return -1
		}
		return 0
	})
	off := (q.Page - 1) * q.PerPage
	from, to := min(off, len(match)), min(off+q.PerPage, len(match))
	for _, e := range match[from:to] {
		page = append(page, e.EventID)
	}
	return len(match), page
}

func auditEntries(n int) ([]projections.AuditEntry, []string) {
	rng := rand.New(rand.NewPCG(8, 8))
	var custs []string
	companyOf := map[string]string{}
	for i := range 40 {
		id := fmt.Sprintf("cus-%d", i)
		custs = append(custs, id)
		companyOf[id] = pick(rng, companies)
	}
	entries := make([]projections.AuditEntry, n)
	for i := range entries {
		entries[i] = randomEntry(rng, i, custs, companyOf)
	}
	return entries, custs
}

func testAuditOracle(t *testing.T, s projections.Store) {
	ctx := testCtx(t)
	gen := mustCreate(t, ctx, s, projections.AuditProjection, 1)
	entries, custs := auditEntries(500)
	for i, chunk := range slices.Collect(slices.Chunk(entries, 100)) {
		if err := s.AppendAudit(ctx, gen, pos(uint64(i+1)), chunk); err != nil {
			t.Fatal(err)
		}
	}
	mustActivate(t, ctx, s, projections.AuditProjection, gen)
	byID := map[string]projections.AuditEntry{}
	for _, e := range entries {
		byID[e.EventID] = e
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range 200 {
		q := randomAuditQuery(rng, custs).Normalized()
		if i == 0 {
			q = projections.AuditQuery{}.Normalized()
		}
		total, want := auditOracle(q, entries)
		page, err := s.Audit(ctx, q)
		if err != nil {
			t.Fatalf("audit query %+v: %v", q, err)
		}
		var got []string
		for _, e := range page.Entries {
			got = append(got, e.EventID)
			wj, _ := json.Marshal(byID[e.EventID])
			gj, _ := json.Marshal(e)
			if string(wj) != string(gj) {
				t.Fatalf("audit entry read back as\n%s\nwant\n%s", gj, wj)
			}
		}
		if page.Total != total || !slices.Equal(got, want) || page.Page != q.Page || page.PerPage != q.PerPage {
			t.Fatalf("audit query %+v:\n got total %d, page %d/%d, entries %v\nwant total %d, entries %v",
				q, page.Total, page.Page, page.PerPage, got, total, want)
		}
	}
}

func testAuditCompanies(t *testing.T, s projections.Store) {
	ctx := testCtx(t)
	gen := mustCreate(t, ctx, s, projections.AuditProjection, 1)
	entries, custs := auditEntries(300)
	if err := s.AppendAudit(ctx, gen, pos(1), entries); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, e := range entries {
		if e.Type == "CustomerRegistered" {
			want[e.CustomerID] = e.CompanyID
		}
	}
	got, err := s.AuditCompanies(ctx, gen, append(custs, "never-seen"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("audit companies: %v, want %v", got, want)
	}
	for id, c := range want {
		if got[id] != c {
			t.Fatalf("audit companies: %v, want %v", got, want)
		}
	}
}

// testReadsDuringSwap reads the list without pause while rebuilds replace
// the generation that serves it: no read may fail or see a half state.
func testReadsDuringSwap(t *testing.T, s projections.Store) {
	ctx := testCtx(t)
	rows := customers(10, 60)
	entries, _ := auditEntries(50)
	fill := func() {
		gen := mustCreate(t, ctx, s, projections.CustomersProjection, 1)
		mustPut(t, ctx, s, gen, pos(1), rows)
		ag := mustCreate(t, ctx, s, projections.AuditProjection, 1)
		if err := s.AppendAudit(ctx, ag, pos(1), entries); err != nil {
			t.Fatal(err)
		}
		mustActivate(t, ctx, s, projections.CustomersProjection, gen)
		mustActivate(t, ctx, s, projections.AuditProjection, ag)
	}
	fill()

	var stop atomic.Bool
	var reads atomic.Int64
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				q := projections.ListQuery{Sort: projections.SortName, PerPage: 20, Page: 1 + r}.Normalized()
				page, err := s.ListCustomers(ctx, q)
				if err == nil && (page.Total != len(rows) || len(page.Rows) != 20) {
					err = fmt.Errorf("list during swap: total %d, %d rows; want %d, 20", page.Total, len(page.Rows), len(rows))
				}
				if err == nil {
					_, err = s.Customer(ctx, rows[r].Customer.ID)
				}
				if err == nil {
					var a projections.AuditPage
					a, err = s.Audit(ctx, projections.AuditQuery{Types: []string{"StatusChanged", "NoteAdded", "TagsChanged", "ProfileUpdated", "CustomerRegistered"}}.Normalized())
					if err == nil && (a.Total != len(entries) || len(a.Entries) != 20) {
						err = fmt.Errorf("audit during swap: total %d, %d entries", a.Total, len(a.Entries))
					}
				}
				if err != nil {
					errs <- err
					return
				}
				reads.Add(1)
			}
		}()
	}
	// At least a few swaps, and more until the readers have run: a fast
	// store could finish them before a reader is scheduled.
	for i := 0; i < 3 || (reads.Load() < 10 && len(errs) == 0 && i < 1000); i++ {
		fill()
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if reads.Load() == 0 {
		t.Fatal("no read ran during the swaps")
	}
}
