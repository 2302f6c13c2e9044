package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// The conformance suite (readtest) checks the plans the store picks for its
// small data; these tests check every plan a query can get, since which
// one is cheapest depends on the size and spread of the data.

var (
	planNow       = time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC)
	planCompanies = []string{"acme", "globex", "initech"}
	planStatuses  = []string{"pending", "approved", "rejected", "blocked"}
	// Values with the set separator and its escape in them, empty ones,
	// and ones that are prefixes or parts of others.
	planTags  = []string{"vip", "vi", "p", "", "a" + setSep + "b", "a", "b", setEsc, setEsc + "\x1d", "x" + setEsc}
	planRoles = []string{"admin", "viewer", "admin2"}
	planDocs  = []string{"passport", "id_card", "pass"}
	planFirst = []string{"Ana", "Anabela", "Mar" + setSep + "co", "Maria", "Zoë", "O'Neil", "ana" + setEsc}
	planLast  = []string{"Silva", "Sil", "Silveira", "Costa", "Santos"}
)

func planPick[T any](rng *rand.Rand, vs []T) T { return vs[rng.IntN(len(vs))] }

func planSubset[T any](rng *rand.Rand, vs []T, n int) []T {
	var out []T
	for range rng.IntN(n + 1) {
		out = append(out, planPick(rng, vs))
	}
	return out
}

func planDate(rng *rand.Rand, from, years int) string {
	return fmt.Sprintf("%04d-%02d-%02d", from+rng.IntN(years), 1+rng.IntN(12), 1+rng.IntN(28))
}

func planCustomer(rng *rand.Rand, i int) projections.CustomerRow {
	c := &domain.Customer{
		ID:                fmt.Sprintf("cus-%04d", i),
		PublicID:          fmt.Sprintf("P%04d", rng.IntN(10000)),
		CompanyID:         planPick(rng, planCompanies),
		Status:            planPick(rng, planStatuses),
		Nationality:       planPick(rng, []string{"PT", "ES", ""}),
		Risk:              planPick(rng, []string{"", domain.RiskNormal, domain.RiskHigh}),
		VideoCallStatus:   planPick(rng, []string{"", "COMPLETE", "BAD QUALITY"}),
		VerificationLevel: rng.IntN(3),
		CreatedByAgent:    planPick(rng, []string{"", "agent-1", "agent-2"}),
		ReferralCode:      planPick(rng, []string{"", "REF1"}),
		Tags:              planSubset(rng, planTags, 3),
		AccessRoles:       planSubset(rng, planRoles, 2),
		AccessGroups:      planSubset(rng, []string{"north", "south"}, 2),
		// Coarse times, so sorts have ties that seq must break.
		CreatedAt: planNow.Add(-time.Duration(rng.IntN(50)) * 24 * time.Hour),
		Revision:  1,
	}
	if rng.IntN(8) > 0 {
		c.Name = &domain.Name{First: planPick(rng, planFirst), Last: planPick(rng, planLast)}
	}
	if rng.IntN(4) > 0 {
		c.BirthDate = planDate(rng, 1950, 60)
	}
	for range rng.IntN(3) {
		c.Emails = append(c.Emails, fmt.Sprintf("user%d@ex.com", rng.IntN(50)))
	}
	if rng.IntN(4) > 0 {
		c.Address = &domain.Address{Country: planPick(rng, []string{"PT", "FR", ""})}
	}
	for d := range rng.IntN(4) {
		doc := domain.Document{ID: fmt.Sprintf("d%d", d), Type: planPick(rng, planDocs)}
		switch rng.IntN(12) {
		case 0, 1, 2:
		case 3:
			// Not of the form the expiries column holds.
			doc.ExpiryDate = planPick(rng, []string{"2024-3-1", "2025-06-01x", "2024-06-0é", "2024-06-0"})
		default:
			doc.ExpiryDate = planDate(rng, 2023, 5)
		}
		c.Documents = append(c.Documents, doc)
	}
	if rng.IntN(3) > 0 {
		t := planNow.Add(-time.Duration(rng.IntN(30)) * 24 * time.Hour)
		c.LastStatusUpdate = &t
	}
	return projections.CustomerRow{Customer: c, VerificationStatus: c.VerificationStatus(),
		State: planPick(rng, []string{"", "active"}), AggregatedStatus: "pending"}
}

// planChange is a later event: new status, tags, name, documents, company.
func planChange(rng *rand.Rand, r projections.CustomerRow) projections.CustomerRow {
	c := *r.Customer
	c.Status = planPick(rng, planStatuses)
	c.Tags = planSubset(rng, planTags, 3)
	if rng.IntN(2) == 0 {
		c.Name = &domain.Name{First: planPick(rng, planFirst), Last: planPick(rng, planLast)}
	}
	if rng.IntN(3) == 0 {
		c.CompanyID = planPick(rng, planCompanies)
	}
	if rng.IntN(2) == 0 {
		c.Documents = append(slices.Clip(c.Documents), domain.Document{ID: "new", Type: planPick(rng, planDocs), ExpiryDate: planDate(rng, 2023, 5)})
	}
	t := planNow.Add(-time.Duration(rng.IntN(30)) * time.Hour)
	c.LastStatusUpdate = &t
	c.Revision++
	r.Customer = &c
	return r
}

func planQuery(rng *rand.Rand) projections.ListQuery {
	q := projections.ListQuery{Sort: planPick(rng, projections.SortKeys), Desc: rng.IntN(2) == 0,
		PerPage: planPick(rng, []int{5, 20}), Page: 1 + rng.IntN(4), Now: planNow}
	add := []func(){
		func() {
			q.Q = planPick(rng, []string{"an", "ana", "sil", "mar" + setSep, "mar", "user1", "p00", "ana" + setEsc, "zoë s"})
		},
		func() { q.Statuses = planSubset(rng, planStatuses, 2) },
		func() { q.Risks = []string{planPick(rng, []string{"", domain.RiskHigh})} },
		func() { q.VerificationLevels = []int{rng.IntN(3)} },
		func() { q.Nationalities = []string{"PT"} },
		func() { q.Agents = []string{"agent-1"} },
		func() { q.Countries = []string{planPick(rng, []string{"PT", ""})} },
		func() { q.Tags = planSubset(rng, planTags, 2) },
		func() { q.AccessRoles = []string{planPick(rng, planRoles)} },
		func() { q.DocumentTypes = planSubset(rng, planDocs, 2) },
		func() {
			q.Expiry = projections.DateRange{From: planPick(rng, []string{"", "2024-03-01"}), To: planPick(rng, []string{"", "2025-06-30"})}
		},
		func() { q.Created = projections.TimeRange{From: planNow.Add(-20 * 24 * time.Hour)} },
		func() { q.Updated = projections.TimeRange{To: planNow.Add(-5 * 24 * time.Hour)} },
		func() { a, b := 20, 50; q.AgeMin, q.AgeMax = &a, &b },
		func() { q.ScopeCompany = planPick(rng, planCompanies) },
		func() { q.Companies = planSubset(rng, planCompanies, 2) },
	}
	for range rng.IntN(4) {
		planPick(rng, add)()
	}
	return q.Normalized()
}

func planOracle(q projections.ListQuery, all []projections.CustomerRow) (int, []string) {
	var match []projections.CustomerRow
	for _, r := range all {
		if q.Matches(r) {
			match = append(match, r)
		}
	}
	slices.SortFunc(match, q.Compare)
	from, to := min(q.Offset(), len(match)), min(q.Offset()+q.PerPage, len(match))
	var ids []string
	for _, r := range match[from:to] {
		ids = append(ids, r.Customer.ID)
	}
	return len(match), ids
}

// planStore fills a store and returns it with the rows it holds.
func planStore(t *testing.T, path string) (*Store, []projections.CustomerRow) {
	t.Helper()
	ctx := t.Context()
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	rng := rand.New(rand.NewPCG(3, 4))
	gen, err := s.CreateGeneration(ctx, projections.CustomersProjection, 1)
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]projections.CustomerRow, 300)
	for i := range rows {
		rows[i] = planCustomer(rng, i)
	}
	put := func(p uint64, rs []projections.CustomerRow) {
		t.Helper()
		if err := s.PutCustomers(ctx, gen, domain.Position{Commit: p, Prepare: p}, rs); err != nil {
			t.Fatal(err)
		}
	}
	put(1, rows[:200])
	for range 60 {
		i := rng.IntN(200)
		rows[i] = planChange(rng, rows[i])
		put(2, rows[i:i+1])
	}
	if err := s.Activate(ctx, projections.CustomersProjection, gen); err != nil {
		t.Fatal(err)
	}
	// Writes after activation go through the indexes.
	put(3, rows[200:])
	for range 60 {
		i := rng.IntN(len(rows))
		rows[i] = planChange(rng, rows[i])
		put(4, rows[i:i+1])
	}
	loaded, err := s.LoadCustomers(ctx, gen, func() []string {
		var ids []string
		for _, r := range rows {
			ids = append(ids, r.Customer.ID)
		}
		return ids
	}())
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		rows[i].Seq = loaded[rows[i].Customer.ID].Seq
	}
	return s, rows
}

// planCases counts the kinds of access checkPlans ran, so that a test can
// tell its queries reached each.
type planCases struct {
	// ordered, ranged: pages read off the terms rows alone (byTerms), of
	// one value and of a range; probed, merged: accesses off the terms rows
	// that check other conditions in their column indexes, entry by entry
	// or by intersecting them.
	ordered, ranged, probed, merged int
}

func (c *planCases) add(o planCases) {
	c.ordered, c.ranged, c.probed, c.merged = c.ordered+o.ordered, c.ranged+o.ranged, c.probed+o.probed, c.merged+o.merged
}

// checkPlans runs q through every access, both ways of checking words, and
// compares each count and page with the oracle; it checks that SQLite reads
// the index an access names, and each column's index a probe names. It
// returns the kinds of access that had matches to read.
func checkPlans(t *testing.T, s *Store, q projections.ListQuery, rows []projections.CustomerRow) (cases planCases) {
	t.Helper()
	ctx := t.Context()
	gen := s.active[projections.CustomersProjection]
	total, want := planOracle(q, rows)
	page, err := s.ListCustomers(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, 0, len(page.Rows))
	for _, r := range page.Rows {
		got = append(got, r.Customer.ID)
	}
	if page.Total != total || !slices.Equal(got, want) {
		t.Fatalf("query %+v: got total %d %v, want %d %v", q, page.Total, got, total, want)
	}
	p := newListPlan(q, gen)
	if p.empty {
		return cases
	}
	if err := p.estimate(ctx, s.rdb); err != nil {
		t.Fatal(err)
	}
	if n, ok := p.exactTotal(); ok && int(n) != total {
		t.Fatalf("query %+v: total from the counts %v, want %d", q, n, total)
	}
	query, args := p.countSQL()
	var n int
	if err := s.rdb.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if n != total {
		t.Fatalf("query %+v: %s counts %d, want %d", q, query, n, total)
	}
	for _, a := range p.accesses() {
		if a.byTerms && q.Sort == projections.SortCreatedAt && q.Offset() < total {
			if a.inOrder() {
				cases.ordered++
			} else {
				cases.ranged++
			}
		}
		switch {
		case total == 0:
		case a.merged:
			cases.merged++
		case a.byTerms && len(p.conds) > 1:
			cases.probed++
		}
		for _, sets := range []bool{false, true} {
			if sets && a.index == "" {
				continue
			}
			a.termSets = sets
			query, args := p.countSQLWith(a)
			if err := s.rdb.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			if n != total {
				t.Fatalf("query %+v: %s counts %d, want %d", q, query, n, total)
			}
			if len(p.conds) > 0 || p.companies != nil {
				// A bare count(*) reads the smallest index whatever
				// the query names; the store takes it from the counts.
				checkIndex(t, s, a, query, args)
			}
			checkProbes(t, s, p, a, query, args)
			query, args = p.pageSQLWith(a, q)
			var ids []string
			if err := s.queryRows(ctx, s.rdb, selectRows(gen)+" WHERE c.seq IN ("+query+")", args, func(r projections.CustomerRow) {
				ids = append(ids, r.Customer.ID)
			}); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			checkIndex(t, s, a, query, args)
			checkProbes(t, s, p, a, query, args)
			if !sameSet(ids, want) {
				t.Fatalf("query %+v: %s reads %v, want %v", q, query, ids, want)
			}
			seqs := column[int64](t, s, query, args...)
			if len(seqs) != len(want) {
				t.Fatalf("query %+v: %s reads %d rows, want %d", q, query, len(seqs), len(want))
			}
			for i, seq := range seqs {
				if id := idOfSeq(rows, seq); id != want[i] {
					t.Fatalf("query %+v: %s: row %d is %s, want %s", q, query, i, id, want[i])
				}
			}
		}
	}
	return cases
}

func sameSet(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

func idOfSeq(rows []projections.CustomerRow, seq int64) string {
	for _, r := range rows {
		if r.Seq == seq {
			return r.Customer.ID
		}
	}
	return ""
}

// column reads the one column a query selects.
func column[T any](t *testing.T, s *Store, query string, args ...any) []T {
	t.Helper()
	rs, err := s.rdb.QueryContext(t.Context(), query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rs.Close()
	var out []T
	for rs.Next() {
		var v T
		if err := rs.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkIndex holds SQLite to the access: the index it names, or lookups by
// seq, and no walk of the whole table.
func checkIndex(t *testing.T, s *Store, a access, query string, args []any) {
	t.Helper()
	plan := queryPlan(t, s, query, args)
	want := "INDEX " + a.index + " "
	switch {
	case a.byTerms:
		want = "SEARCH t USING PRIMARY KEY (field=?"
	case a.index == "":
		want = "SEARCH c USING INTEGER PRIMARY KEY (rowid=?)"
	}
	if !strings.Contains(plan, want) || strings.Contains(plan, "SCAN c \n") {
		t.Fatalf("%s\nplan:\n%s\nwant %s", query, plan, want)
	}
	if a.byTerms && a.inOrder() && strings.HasPrefix(query, "SELECT t.seq ") && strings.Contains(plan, "TEMP B-TREE") {
		t.Fatalf("%s\nplan:\n%s\nwant the terms rows read in order, without a sort", query, plan)
	}
}

// queryPlan is SQLite's plan of query, a line per step, each ending in " ".
func queryPlan(t *testing.T, s *Store, query string, args []any) string {
	t.Helper()
	rs, err := s.rdb.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var lines []string
	for rs.Next() {
		var id, parent, unused int
		var detail string
		if err := rs.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, detail)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, " \n") + " "
}

// checkProbes holds SQLite to the probes of a: each finds its entry by the
// whole key of the column's index; or, merged, reads the entries of its
// value in order and intersects them with the terms rows without sorting
// either.
func checkProbes(t *testing.T, s *Store, p *listPlan, a access, query string, args []any) {
	t.Helper()
	if a.merged && (strings.HasPrefix(query, "SELECT m.seq ") || strings.HasPrefix(query, "SELECT count(*) FROM (")) {
		plan := queryPlan(t, s, query, args)
		// A page sorts its own rows at the end, outside the merge.
		inner, _, _ := strings.Cut(plan, "SCAN m ")
		if !strings.Contains(plan, "MERGE (INTERSECT)") || strings.Contains(inner, "TEMP B-TREE") {
			t.Fatalf("%s\nplan:\n%s\nwant a merge of sorted arms", query, plan)
		}
		checkColumnIndexes(t, p, a, query, plan, ")")
		return
	}
	if !a.byTerms || !strings.HasPrefix(query, "SELECT t.seq ") && !strings.HasPrefix(query, "SELECT count(*) FROM "+termsTable(p.gen)) {
		return
	}
	checkColumnIndexes(t, p, a, query, queryPlan(t, s, query, args), " AND created_at=? AND seq=?")
}

// checkColumnIndexes holds plan to searching each column index a's probes
// or merge read, by its value and then the rest of the key.
func checkColumnIndexes(t *testing.T, p *listPlan, a access, query, plan, rest string) {
	t.Helper()
	for _, k := range p.probes(a.driver) {
		want := "INDEX " + columnIndex(p.gen, k.column, projections.SortCreatedAt) + " (" + k.column + "=?" + rest
		if !strings.Contains(plan, want) {
			t.Fatalf("%s\nplan:\n%s\nwant %s", query, plan, want)
		}
	}
}

func TestEveryPlan(t *testing.T) {
	s, rows := planStore(t, filepath.Join(t.TempDir(), "read.db"))
	var stars, full int
	if err := s.rdb.QueryRowContext(t.Context(), "SELECT count(*) FILTER (WHERE expiries = '*'), count(*) FILTER (WHERE length(expiries) = 40) FROM "+
		customersTable(s.active[projections.CustomersProjection])).Scan(&stars, &full); err != nil {
		t.Fatal(err)
	}
	if stars == 0 || full == 0 {
		t.Fatalf("%d customers with expiries '*' and %d with every slot taken: the data misses a case", stars, full)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	var cases planCases
	for range 150 {
		cases.add(checkPlans(t, s, planQuery(rng), rows))
	}
	// A lone filter on terms, in the default order both ways, with and
	// without a company scope, on every page there is.
	for _, lone := range []projections.ListQuery{
		{Tags: []string{"vip"}}, {AccessRoles: []string{"admin"}}, {DocumentTypes: []string{"pass"}},
		{Q: "an"}, {Q: "sil"}, {Expiry: projections.DateRange{From: "2024-03-01", To: "2025-06-30"}},
		{Expiry: projections.DateRange{To: "2024-12-31"}},
		// and with columns, which are checked in their indexes.
		{Tags: []string{"vip"}, Statuses: planStatuses[:2]}, {AccessRoles: []string{"admin"}, VerificationLevels: []int{1, 2}},
		{Q: "an", Risks: []string{"", domain.RiskHigh}, Nationalities: []string{"PT"}},
		{Tags: []string{"vip"}, Statuses: planStatuses[:1]},
		{DocumentTypes: []string{"pass"}, Risks: []string{domain.RiskHigh}, Nationalities: []string{"PT"}},
	} {
		for _, scope := range []string{"", "globex"} {
			for _, desc := range []bool{true, false} {
				for page := 1; page <= 6; page++ {
					q := lone
					q.ScopeCompany, q.Desc, q.Page, q.PerPage, q.Now = scope, desc, page, 20, planNow
					cases.add(checkPlans(t, s, q.Normalized(), rows))
				}
			}
		}
	}
	// Pages read off the terms alone, for one value and for a range, and
	// with other conditions checked in their indexes.
	t.Logf("%+v", cases)
	if cases.ordered < 3 || cases.ranged < 3 || cases.probed < 3 || cases.merged < 3 {
		t.Fatalf("%+v: the queries miss a case", cases)
	}
}

// TestUpgrade takes a generation back to the layout of the release before
// set columns, prev and the values table, reopens the store and expects
// the upgrade to restore what the writes had made.
func TestUpgrade(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "read.db")
	s, rows := planStore(t, path)
	gen := s.active[projections.CustomersProjection]
	c, terms, values := customersTable(gen), termsTable(gen), valuesTable(gen)
	snapshot := func(s *Store) (string, string, string) {
		t.Helper()
		dump := func(query string) string {
			var b strings.Builder
			rs, err := s.rdb.QueryContext(ctx, query)
			if err != nil {
				t.Fatal(err)
			}
			defer rs.Close()
			for rs.Next() {
				var seq any
				var v string
				if err := rs.Scan(&seq, &v); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "%v %q\n", seq, v)
			}
			return b.String()
		}
		var sets []string
		for _, sc := range setColumns() {
			sets = append(sets, sc.column)
		}
		sets = append(sets, "expiries")
		var b strings.Builder
		rs, err := s.rdb.QueryContext(ctx, "SELECT seq, "+strings.Join(sets, ", ")+" FROM "+c+" ORDER BY seq")
		if err != nil {
			t.Fatal(err)
		}
		for rs.Next() {
			vals := make([]string, len(sets))
			dst := []any{new(int64)}
			for i := range vals {
				dst = append(dst, &vals[i])
			}
			if err := rs.Scan(dst...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%d %q\n", *dst[0].(*int64), vals)
		}
		rs.Close()
		return b.String(),
			dump("SELECT seq || ' ' || field || ' ' || value || ' ' || created_at || ' ' || company_id, coalesce(prev, '<null>') FROM " +
				terms + " ORDER BY field, value, seq"),
			dump("SELECT field || ' ' || value || ' ' || company_id, n FROM " + values + " WHERE n <> 0 ORDER BY 1")
	}
	wantSets, wantTerms, wantValues := snapshot(s)
	indexes := func(s *Store) []string {
		return column[string](t, s, "SELECT name || ' ' || sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
	}
	wantIndexes := indexes(s)

	// The older layout: no set columns nor search, terms rows keyed by
	// (field, value, seq) without prev, created_at or company_id, no values
	// table, an index the templates no longer have, and one under a name
	// they still use that holds fewer columns.
	var ddl []string
	for _, ix := range wantIndexes {
		if name := strings.Fields(ix)[0]; strings.HasPrefix(name, c+"_") {
			ddl = append(ddl, "DROP INDEX "+name)
		}
	}
	ddl = append(ddl, "CREATE INDEX "+c+"_nationality_created ON "+c+" (nationality, created_at, seq)")
	for _, sc := range setColumns() {
		ddl = append(ddl, "ALTER TABLE "+c+" DROP COLUMN "+sc.column)
	}
	ddl = append(ddl, "ALTER TABLE "+c+" DROP COLUMN expiries")
	ddl = append(ddl, "ALTER TABLE "+terms+" RENAME TO old_terms",
		"CREATE TABLE "+terms+" (field TEXT NOT NULL, value TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (field, value, seq)) STRICT, WITHOUT ROWID",
		"INSERT INTO "+terms+" SELECT field, value, seq FROM old_terms", "DROP TABLE old_terms", "DROP TABLE "+values,
		"CREATE INDEX "+c+"_status ON "+c+" (status)")
	for _, stmt := range ddl {
		if _, err := s.wdb.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	var logged bytes.Buffer
	s, err := Open(ctx, path, WithLogger(slog.New(slog.NewTextHandler(&logged, nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Each index the upgrade builds is named as it starts and as it ends.
	lines := strings.Split(logged.String(), "\n")
	for _, ix := range wantIndexes {
		ix := strings.Fields(ix)[0]
		if !strings.HasPrefix(ix, c+"_") {
			continue
		}
		n := 0
		for _, line := range lines {
			if slices.Contains(strings.Fields(line), "index="+ix) {
				n++
			}
		}
		if n != 2 {
			t.Errorf("the upgrade's log names %s %d times, want 2:\n%s", ix, n, logged.String())
		}
	}
	gotSets, gotTerms, gotValues := snapshot(s)
	if gotSets != wantSets {
		t.Errorf("set columns after the upgrade:\n%s\nwant\n%s", gotSets, wantSets)
	}
	if gotTerms != wantTerms {
		t.Errorf("terms after the upgrade:\n%s\nwant\n%s", gotTerms, wantTerms)
	}
	if gotValues != wantValues {
		t.Errorf("values after the upgrade:\n%s\nwant\n%s", gotValues, wantValues)
	}
	if got := indexes(s); !slices.Equal(got, wantIndexes) {
		t.Errorf("indexes after the upgrade:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantIndexes, "\n"))
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 25 {
		checkPlans(t, s, planQuery(rng), rows)
	}
	// A second open finds nothing to do.
	logged.Reset()
	if err := s.upgrade(context.Background()); err != nil {
		t.Fatal(err)
	}
	if logged.Len() > 0 {
		t.Errorf("a second upgrade logged:\n%s", logged.String())
	}
}

// The put reads a stored row's company and created date by position.
func TestColumnPositions(t *testing.T) {
	for pos, want := range map[int]string{colCompany: "company_id", colCreated: "created_at"} {
		if customerColumns[pos] != want {
			t.Errorf("customerColumns[%d] is %s, want %s", pos, customerColumns[pos], want)
		}
	}
}

// The plans take the indexes of keptColumns to hold filterHeld
// (access.holds); one that did not would be read with a lookup per entry
// where the plans count on none.
func TestFilterIndexesHoldWhatPlansAssume(t *testing.T) {
	s, _ := planStore(t, filepath.Join(t.TempDir(), "read.db"))
	gen := s.active[projections.CustomersProjection]
	checked := 0
	for _, col := range keptColumns {
		if !slices.Contains(customerColumns[1:colLastValue+1], col) {
			t.Errorf("%s is not a single-valued filter column", col)
		}
		ix := columnIndex(gen, col, projections.SortCreatedAt)
		cols := column[string](t, s, "SELECT name FROM pragma_index_info(?)", ix)
		for _, held := range filterHeld {
			if !slices.Contains(cols, held) {
				t.Errorf("index %s holds %v, not %s", ix, cols, held)
			}
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no index checked")
	}
}
