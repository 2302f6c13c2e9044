package postgres

import (
	"database/sql"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/kycengine/kyc/adapters/pgtest"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
	"github.com/kycengine/kyc/schemas"
)

// A generation made before the terms table (schema version 1: search and
// expiry tables, single-column filter indexes) is rewritten by the
// migrations (the terms table, its rows of single-valued filters, the
// counts of the other single-valued filters and their indexes followed by
// the created date): its lists answer as before, and later puts, including
// ones that move customers to another company or created date, keep it
// equal to a generation built fresh from the same rows, index for index.
func TestUpgradeToTermsTable(t *testing.T) {
	ctx := t.Context()
	url := pgtest.NewDatabase(t)
	rows := explainCustomers(600)
	s, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := s.CreateGeneration(ctx, projections.CustomersProjection, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutCustomers(ctx, gen, domain.Position{Commit: 1, Prepare: 1}, rows); err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(ctx, projections.CustomersProjection, gen); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC)
	var queries []projections.ListQuery
	for _, q := range []projections.ListQuery{
		{Tags: []string{"tag-3"}}, {Tags: []string{"tag-3", "tag-7"}}, {AccessRoles: []string{"role-2"}},
		{AccessGroups: []string{"group-4"}}, {DocumentTypes: []string{"passport"}}, {Q: rows[5].Customer.Name.Last[:3]},
		{Expiry: projections.DateRange{From: "2024-01-01", To: "2026-12-31"}}, {Statuses: []string{"approved"}},
		{Tags: []string{"tag-1"}, Sort: projections.SortName}, {Tags: []string{"tag-1"}, Statuses: []string{"approved"}},
		{Nationalities: []string{"N7", "PT"}}, {VerificationLevels: []int{2, 3}}, {Countries: []string{"C3"}},
		{ReferralCodes: []string{valueOf(rows, func(c *domain.Customer) string { return c.ReferralCode })}},
		{VideoCallStatuses: []string{valueOf(rows, func(c *domain.Customer) string { return c.VideoCallStatus })}},
		{Agents: []string{valueOf(rows, func(c *domain.Customer) string { return c.CreatedByAgent })}},
		{VerificationStatuses: []string{"identified"}}, {States: []string{"state-2"}}, {Risks: []string{"normal"}},
	} {
		for _, scope := range []string{"", "co-03"} {
			for _, page := range []int{1, 3} {
				q.ScopeCompany, q.Page, q.PerPage, q.Now = scope, page, 20, now
				queries = append(queries, q.Normalized())
			}
		}
	}
	answers := func(s *Store) []string {
		t.Helper()
		var out []string
		for _, q := range queries {
			page, err := s.ListCustomers(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range page.Rows {
				ids = append(ids, r.Customer.ID)
			}
			out = append(out, fmt.Sprintf("%d %v", page.Total, ids))
		}
		return out
	}
	before := answers(s)
	s.Close()

	// Back to schema version 1 through the migration's Down.
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, schemas.Migrations("postgres-read"),
		goose.WithTableName(versionTable), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	exists := func(table string) bool {
		var found bool
		if err := db.QueryRowContext(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&found); err != nil {
			t.Fatal(err)
		}
		return found
	}
	n := fmt.Sprint(gen)
	if !exists("read_search_g"+n) || exists("read_terms_g"+n) {
		t.Fatal("the down migration did not restore the old layout")
	}

	s, err = Open(ctx, url) // migrates up again
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if exists("read_search_g"+n) || !exists("read_terms_g"+n) {
		t.Fatal("the up migration did not make the terms table")
	}
	if after := answers(s); !slices.Equal(after, before) {
		t.Fatalf("lists changed across the upgrade:\n%v\n%v", before, after)
	}

	// Later puts on the upgraded generation.
	changed := make([]projections.CustomerRow, 0, len(rows)/3)
	for i := 0; i < len(rows); i += 3 {
		c := *rows[i].Customer
		c.Tags = append(slices.Clone(c.Tags), "tag-3")
		c.Documents = c.Documents[:len(c.Documents)/2]
		if i%2 == 0 {
			c.CompanyID = "co-03"
		}
		if i%5 == 0 {
			c.CreatedAt = c.CreatedAt.Add(-time.Hour)
		}
		r := rows[i]
		r.Customer = &c
		rows[i] = r
		changed = append(changed, r)
	}
	if _, err := s.Checkpoint(ctx, projections.CustomersProjection, gen); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCustomers(ctx, gen, domain.Position{Commit: 2, Prepare: 2}, changed); err != nil {
		t.Fatal(err)
	}
	upgraded := answers(s)
	termTables := []string{
		"SELECT field, value, created_at, seq, company_id FROM read_terms_g%d ORDER BY 1, 2, 3, 4",
		"SELECT field, value, company_id, n FROM read_term_counts_g%d WHERE n <> 0 ORDER BY 1, 2, 3",
	}
	var upgradedTerms [][]string
	for _, table := range termTables {
		upgradedTerms = append(upgradedTerms, dump(t, db, fmt.Sprintf(table, gen)))
	}
	indexes := func(gen projections.Generation) []string {
		return dump(t, db, fmt.Sprintf(`SELECT replace(indexdef, '_g%[1]d', '_gN') FROM pg_indexes
			WHERE tablename IN ('read_customers_g%[1]d', 'read_terms_g%[1]d', 'read_term_counts_g%[1]d') ORDER BY 1`, gen))
	}
	upgradedIndexes := indexes(gen)
	fresh, err := s.CreateGeneration(ctx, projections.CustomersProjection, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutCustomers(ctx, fresh, domain.Position{Commit: 2, Prepare: 2}, rows); err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(ctx, projections.CustomersProjection, fresh); err != nil {
		t.Fatal(err)
	}
	if got := answers(s); !slices.Equal(upgraded, got) {
		t.Fatalf("the upgraded generation after puts differs from a fresh one:\n%v\n%v", upgraded, got)
	}
	// Row for row: the lists above cannot see rows no filter asks for.
	for i, table := range termTables {
		if b := dump(t, db, fmt.Sprintf(table, fresh)); !slices.Equal(upgradedTerms[i], b) {
			t.Errorf("%s: the upgraded generation has %d rows, a fresh one %d; first difference: %s",
				table, len(upgradedTerms[i]), len(b), firstDifference(upgradedTerms[i], b))
		}
	}
	// The same indexes, by definition and not only by name.
	if b := indexes(fresh); !slices.Equal(upgradedIndexes, b) {
		t.Errorf("indexes: the upgraded generation has %d, a fresh one %d; first difference: %s",
			len(upgradedIndexes), len(b), firstDifference(upgradedIndexes, b))
	}
	// And both agree with the rows themselves.
	for i, q := range queries {
		var want []string
		for _, r := range rows {
			if q.Matches(r) {
				want = append(want, r.Customer.ID)
			}
		}
		var total int
		fmt.Sscan(upgraded[i], &total)
		if total != len(want) {
			t.Errorf("query %d: total %d, want %d", i, total, len(want))
		}
	}
}

// valueOf is the first value of a field that the rows hold other than "".
func valueOf(rows []projections.CustomerRow, field func(*domain.Customer) string) string {
	for _, r := range rows {
		if v := field(r.Customer); v != "" {
			return v
		}
	}
	panic("no customer has a value")
}

// dump reads a query's rows, each as one string.
func dump(t *testing.T, db *sql.DB, query string) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(vals...))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func firstDifference(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("%q against %q", a[i], b[i])
		}
	}
	return "one is longer"
}
