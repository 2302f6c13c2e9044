package postgres

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kycengine/kyc/adapters/pgtest"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

func TestPrefixEnd(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"ab", "ac", true},
		{"é", "ê", true},
		{"a\U0010FFFF", "b", true},
		{"\U0010FFFF", "", false},
		{"", "", false},
		{"x\uD7FF", "x\uE000", true},
	} {
		got, ok := prefixEnd(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("prefixEnd(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// The tables that say which fields the terms table holds agree.
func TestTermFields(t *testing.T) {
	if len(termFields) != firstSingle+len(singleFields) {
		t.Fatalf("%d term fields, want %d and %d single-valued", len(termFields), firstSingle, len(singleFields))
	}
	seen := map[string]bool{}
	for i, f := range termFields {
		if len(f.code) != 1 || seen[f.code] {
			t.Errorf("field %d: code %q is not one character, or is taken", i, f.code)
		}
		seen[f.code] = true
		if f.single != (i >= firstSingle) || (f.single && !f.counted) || (f.rowless && !f.single) {
			t.Errorf("field %d (%q): single %v, counted %v, rowless %v", i, f.code, f.single, f.counted, f.rowless)
		}
	}
}

// explainCustomers makes n customers whose values spread like real ones:
// a few common values and a long tail, so that selective filters exist.
func explainCustomers(n int) []projections.CustomerRow {
	rng := rand.New(rand.NewPCG(42, 42))
	skewed := func(common string, tail string, tailSize int) string {
		if rng.IntN(10) < 7 {
			return common
		}
		return fmt.Sprintf("%s%d", tail, rng.IntN(tailSize))
	}
	syllables := []string{"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "an", "el", "or"}
	word := func() string {
		var b strings.Builder
		for range 2 + rng.IntN(3) {
			b.WriteString(syllables[rng.IntN(len(syllables))])
		}
		return b.String()
	}
	start := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	rows := make([]projections.CustomerRow, n)
	for i := range rows {
		c := &domain.Customer{
			ID:                fmt.Sprintf("cus-%06d", i),
			PublicID:          fmt.Sprintf("P%07d", rng.IntN(10_000_000)),
			CompanyID:         fmt.Sprintf("co-%02d", rng.IntN(10)),
			Status:            skewed("approved", "status-", 6),
			Nationality:       skewed("PT", "N", 40),
			Risk:              skewed("normal", "risk-", 3),
			VideoCallStatus:   skewed("", "video-", 4),
			VerificationLevel: rng.IntN(6),
			CreatedByAgent:    skewed("", "agent-", 50),
			ReferralCode:      skewed("", "REF", 200),
			CreatedAt:         start.Add(time.Duration(rng.Int64N(int64(2 * 365 * 24 * time.Hour)))),
			Name:              &domain.Name{First: word(), Last: word()},
			BirthDate:         fmt.Sprintf("%04d-%02d-%02d", 1940+rng.IntN(67), 1+rng.IntN(12), 1+rng.IntN(28)),
			Emails:            []string{fmt.Sprintf("%s%d@example.com", word(), i)},
			Address:           &domain.Address{Country: skewed("PT", "C", 40)},
		}
		for range rng.IntN(3) {
			c.Tags = append(c.Tags, fmt.Sprintf("tag-%d", rng.IntN(40)))
		}
		c.AccessRoles = []string{fmt.Sprintf("role-%d", rng.IntN(10))}
		c.AccessGroups = []string{fmt.Sprintf("group-%d", rng.IntN(20))}
		for d := range rng.IntN(3) {
			c.Documents = append(c.Documents, domain.Document{ID: fmt.Sprint(d), Type: skewed("passport", "doc-", 10),
				ExpiryDate: fmt.Sprintf("%04d-%02d-%02d", 2020+rng.IntN(15), 1+rng.IntN(12), 1+rng.IntN(28))})
		}
		if rng.IntN(10) < 7 {
			t := c.CreatedAt.Add(time.Hour * time.Duration(rng.IntN(1000)))
			c.LastStatusUpdate = &t
		}
		rows[i] = projections.CustomerRow{Customer: c, VerificationStatus: skewed("identified", "vs-", 3),
			State: skewed("active", "state-", 3), AggregatedStatus: "active"}
	}
	return rows
}

// TestListQueryPlans checks, with EXPLAIN on a few thousand customers, that
// each list filter, the sorts and the counts are served by their indexes.
// Run with -v to see the plans.
func TestListQueryPlans(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows := explainCustomers(5000)
	gen, err := s.CreateGeneration(ctx, projections.CustomersProjection, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(rows); i += 500 {
		if err := s.PutCustomers(ctx, gen, domain.Position{Commit: 1, Prepare: 1}, rows[i:i+500]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Activate(ctx, projections.CustomersProjection, gen); err != nil {
		t.Fatal(err)
	}
	// Activate's VACUUM marks the pages visible unless a snapshot older
	// than the last put is open in the database (here autovacuum's ANALYZE
	// of the tables being filled); autovacuum marks them later. The plans
	// are those of a database where that has happened.
	for _, table := range []string{"read_customers_g%d", "read_terms_g%d"} {
		table = fmt.Sprintf(table, gen)
		for deadline := time.Now().Add(10 * time.Second); ; {
			var pages, visible int
			if _, err := s.pool.Exec(ctx, "VACUUM "+table); err != nil {
				t.Fatal(err)
			}
			if err := s.pool.QueryRow(ctx, "SELECT relpages, relallvisible FROM pg_class WHERE relname = $1", table).Scan(&pages, &visible); err != nil {
				t.Fatal(err)
			}
			if visible == pages {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d of %d pages visible after 10 s of VACUUM", table, visible, pages)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	ix := func(name string) string { return fmt.Sprintf("read_customers_g%d_%s", gen, name) }
	terms := fmt.Sprintf("read_terms_g%d_pkey", gen)
	termCounts := fmt.Sprintf("read_term_counts_g%d", gen)
	age := 30
	now := time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC)
	created := rows[0].Customer.CreatedAt
	for _, tc := range []struct {
		name string
		q    projections.ListQuery
		// page and count name what must serve the page and the total.
		page, count string
		// merged: the page (in created order) and the count, unless
		// count names another source, intersect streams.
		merged bool
	}{
		{"newest first", projections.ListQuery{}, ix("created"), fmt.Sprintf("read_customer_counts_g%d", gen), false},
		{"company by name", projections.ListQuery{ScopeCompany: "co-03", Sort: projections.SortName},
			ix("company_name"), fmt.Sprintf("read_customer_counts_g%d_pkey", gen), false},
		{"company by last update", projections.ListQuery{ScopeCompany: "co-03", Sort: projections.SortLastStatusUpdate, Desc: true},
			ix("company_updated"), fmt.Sprintf("read_customer_counts_g%d_pkey", gen), false},
		{"search", projections.ListQuery{Q: rows[7].Customer.Name.Last[:4]}, terms, terms, false},
		{"search email", projections.ListQuery{Q: rows[9].Customer.Emails[0][:6]}, terms, terms, false},
		{"search in a company", projections.ListQuery{ScopeCompany: "co-02", Q: rows[7].Customer.Name.Last[:3]}, terms, terms, false},
		{"search by name", projections.ListQuery{Q: rows[7].Customer.Name.Last[:4], Sort: projections.SortName}, terms, terms, false},
		{"status", projections.ListQuery{Statuses: []string{"status-3"}}, ix("status"), termCounts, false},
		{"nationality", projections.ListQuery{Nationalities: []string{"N7", "N8"}}, terms, termCounts, false},
		{"risk", projections.ListQuery{Risks: []string{"risk-1"}}, ix("risk"), termCounts, false},
		{"video call", projections.ListQuery{VideoCallStatuses: []string{"video-2"}}, ix("video"), termCounts, false},
		{"verification status", projections.ListQuery{VerificationStatuses: []string{"vs-1"}}, ix("vstatus"), termCounts, false},
		{"state", projections.ListQuery{States: []string{"state-2"}}, ix("state"), termCounts, false},
		{"country", projections.ListQuery{Countries: []string{"C3"}}, terms, termCounts, false},
		{"country in a company", projections.ListQuery{ScopeCompany: "co-04", Countries: []string{"C3", "C4"}}, terms, termCounts, false},
		{"agent", projections.ListQuery{Agents: []string{"agent-7"}}, terms, termCounts, false},
		{"referral", projections.ListQuery{ReferralCodes: []string{"REF17"}}, terms, termCounts, false},
		{"level", projections.ListQuery{VerificationLevels: []int{5}}, ix("level"), termCounts, false},
		{"two levels", projections.ListQuery{VerificationLevels: []int{4, 5}}, "", termCounts, false},
		{"status and risk", projections.ListQuery{Statuses: []string{"status-3"}, Risks: []string{"risk-1"}}, ix("status"), ix("risk"), true},
		{"status and risk by last update", projections.ListQuery{Statuses: []string{"status-3"}, Risks: []string{"risk-1"},
			Sort: projections.SortLastStatusUpdate}, "", ix("risk"), true},
		{"two statuses and risk", projections.ListQuery{Statuses: []string{"status-3", "status-4"}, Risks: []string{"risk-1"}}, ix("status"), ix("risk"), true},
		{"two companies, two levels and a role", projections.ListQuery{Companies: []string{"co-01", "co-02"}, VerificationLevels: []int{2, 3},
			AccessRoles: []string{"role-5"}, Desc: true}, ix("company_created"), ix("level"), true},
		// One stream is a twentieth of the others or less: the planner
		// reads it and checks the other filter on its rows.
		{"rare agent and common status", projections.ListQuery{Agents: []string{"agent-7"}, Statuses: []string{"approved"}}, "", "", false},
		{"company, status and created", projections.ListQuery{ScopeCompany: "co-02", Statuses: []string{"status-3"},
			Created: projections.TimeRange{From: created}}, ix("company_created"), ix("status"), true},
		{"level, role and document type", projections.ListQuery{VerificationLevels: []int{3}, AccessRoles: []string{"role-5"},
			DocumentTypes: []string{"passport"}, Desc: true}, ix("level"), terms, true},
		{"country by name", projections.ListQuery{Countries: []string{"C3"}, Sort: projections.SortName}, "", termCounts, false},
		{"country and status", projections.ListQuery{Statuses: []string{"status-3"}, Countries: []string{"C3"}}, terms, ix("status"), true},
		{"no agent", projections.ListQuery{Agents: []string{"", "agent-7"}}, "", ix("agent"), false},
		{"created", projections.ListQuery{Created: projections.TimeRange{From: created, To: created.Add(24 * time.Hour)}}, ix("created"), ix("created"), false},
		{"updated", projections.ListQuery{Updated: projections.TimeRange{From: created, To: created.Add(24 * time.Hour)}}, "", ix("updated"), false},
		{"tags", projections.ListQuery{Tags: []string{"tag-5"}}, terms, termCounts, false},
		{"roles", projections.ListQuery{AccessRoles: []string{"role-5"}}, terms, termCounts, false},
		{"groups", projections.ListQuery{AccessGroups: []string{"group-5"}}, terms, termCounts, false},
		{"document types", projections.ListQuery{DocumentTypes: []string{"doc-5"}}, terms, termCounts, false},
		{"document types in a company", projections.ListQuery{ScopeCompany: "co-04", DocumentTypes: []string{"doc-5"}}, terms, termCounts, false},
		{"two tags", projections.ListQuery{Tags: []string{"tag-5", "tag-6"}}, terms, terms, false},
		{"tags by name", projections.ListQuery{Tags: []string{"tag-5"}, Sort: projections.SortName}, "", termCounts, false},
		{"tags and status", projections.ListQuery{Tags: []string{"tag-5"}, Statuses: []string{"status-3"}}, terms, ix("status"), true},
		{"two tags and status", projections.ListQuery{Tags: []string{"tag-5", "tag-6"}, Statuses: []string{"status-3"}}, terms, ix("status"), true},
		{"no agent and status", projections.ListQuery{Agents: []string{""}, Statuses: []string{"status-3"}}, "", "", false},
		{"expiry", projections.ListQuery{Expiry: projections.DateRange{From: "2024-03-01", To: "2024-03-10"}}, terms, terms, false},
		{"age", projections.ListQuery{AgeMin: &age, AgeMax: &age}, "", ix("birth"), false},
		{"company and status", projections.ListQuery{ScopeCompany: "co-01", Statuses: []string{"status-2"}}, ix("company_created"), termCounts, true},
		{"age and status", projections.ListQuery{AgeMin: &age, Statuses: []string{"status-2"}}, "", "", false},
	} {
		q := tc.q
		q.Now = now
		q = q.Normalized()
		plan, err := s.planList(ctx, q, gen)
		if err != nil {
			t.Fatal(err)
		}
		// As ListCustomers runs them, with parallel workers made cheap
		// enough for the planner to want them on this small table.
		settings := func(merged bool) []func(*pgx.Batch) {
			fs := []func(*pgx.Batch){cheapWorkers, queueCustomerListPlans}
			if merged {
				fs = append(fs, queueMergeSettings)
			}
			return fs
		}
		pagePlan := explain(t, ctx, s, plan.page, plan.pageArgs, settings(plan.keysOnly)...)
		countPlan := explain(t, ctx, s, plan.count, plan.countArgs, settings(plan.mergedCount)...)
		t.Logf("%s\n-- page:\n%s\n-- count:\n%s", tc.name, pagePlan, countPlan)
		if tc.page != "" && !strings.Contains(pagePlan, tc.page+" ") {
			t.Errorf("%s: the page does not use %s", tc.name, tc.page)
		}
		// The keys of a page come off these indexes alone: a deep page skips
		// index entries, not rows.
		if tc.page == terms && !strings.Contains(pagePlan, "Index Only Scan") {
			t.Errorf("%s: the page's keys are not read off %s alone", tc.name, tc.page)
		}
		if tc.count != "" && !strings.Contains(countPlan, tc.count+" ") && !strings.HasSuffix(countPlan, tc.count) {
			t.Errorf("%s: the count does not use %s", tc.name, tc.count)
		}
		if strings.Contains(pagePlan+countPlan, "Gather") {
			t.Errorf("%s: parallel workers", tc.name)
		}
		if want := tc.merged && q.Sort == projections.SortCreatedAt; plan.keysOnly != want {
			t.Errorf("%s: page of merged streams %v, want %v", tc.name, plan.keysOnly, want)
		}
		if want := tc.merged && tc.count != termCounts; plan.mergedCount != want {
			t.Errorf("%s: count of merged streams %v, want %v", tc.name, plan.mergedCount, want)
		}
		for _, p := range []struct {
			what, plan string
			merged     bool
		}{{"page", pagePlan, plan.keysOnly}, {"count", countPlan, plan.mergedCount}} {
			if p.merged {
				checkMerged(t, tc.name+": "+p.what, p.plan)
			}
		}
	}
}

// checkMerged fails unless plan intersects its streams by merging them,
// reading indexes alone and in order.
func checkMerged(t *testing.T, what, plan string) {
	t.Helper()
	if !strings.Contains(plan, "Merge Join") {
		t.Errorf("%s: no merge join", what)
	}
	for _, line := range strings.Split(plan, "\n") {
		node, _, isNode := strings.Cut(strings.TrimLeft(line, " ->"), "  (cost=")
		if !isNode {
			continue
		}
		for _, bad := range []string{"Bitmap", "Seq Scan", "Sort", "Hash", "Nested Loop", "Materialize"} {
			if strings.Contains(node, bad) {
				t.Errorf("%s: the plan has a %s", what, node)
			}
		}
		if strings.HasPrefix(node, "Index Scan") {
			t.Errorf("%s: the plan visits rows: %s", what, node)
		}
	}
}

// TestAuditQueryPlans does the same for the audit log: newest first, alone
// and after each filter.
func TestAuditQueryPlans(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, pgtest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	entries := make([]projections.AuditEntry, 5000)
	for i := range entries {
		customer := fmt.Sprintf("cus-%04d", rng.IntN(1000))
		entries[i] = projections.AuditEntry{
			EventLine: projections.EventLine{EventID: fmt.Sprintf("evt-%05d", i), Type: fmt.Sprintf("Type%d", rng.IntN(20)),
				Actor:      domain.Actor{Kind: domain.ActorOperator, ID: fmt.Sprintf("op-%d", rng.IntN(50))},
				OccurredAt: start.Add(time.Duration(i) * time.Minute)},
			Position:   domain.Position{Commit: uint64(10 + i), Prepare: uint64(10 + i)},
			CustomerID: customer, CompanyID: fmt.Sprintf("co-%d", rng.IntN(10)),
		}
	}
	gen, err := s.CreateGeneration(ctx, projections.AuditProjection, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, gen, domain.Position{Commit: 6000, Prepare: 6000}, entries); err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(ctx, projections.AuditProjection, gen); err != nil {
		t.Fatal(err)
	}
	ix := func(name string) string { return fmt.Sprintf("read_audit_g%d_%s", gen, name) }
	for _, tc := range []struct {
		name        string
		q           projections.AuditQuery
		page, count string
	}{
		{"newest first", projections.AuditQuery{}, ix("position"), fmt.Sprintf("read_audit_counts_g%d", gen)},
		{"company", projections.AuditQuery{ScopeCompany: "co-3"}, "", fmt.Sprintf("read_audit_counts_g%d_pkey", gen)},
		{"customer", projections.AuditQuery{Customers: []string{"cus-0042"}}, ix("customer"), ix("customer")},
		{"actor", projections.AuditQuery{Actors: []string{"op-7"}}, "", ix("actor")},
		{"type", projections.AuditQuery{Types: []string{"Type3"}}, "", ix("type")},
		{"time", projections.AuditQuery{Time: projections.TimeRange{From: start.Add(time.Hour), To: start.Add(2 * time.Hour)}},
			"", ix("occurred")},
	} {
		pageSQL, pageArgs, countSQL, countArgs := auditSQL(tc.q.Normalized(), gen)
		pagePlan := explain(t, ctx, s, pageSQL, pageArgs)
		countPlan := explain(t, ctx, s, countSQL, countArgs)
		t.Logf("%s\n-- page:\n%s\n-- count:\n%s", tc.name, pagePlan, countPlan)
		if tc.page != "" && !strings.Contains(pagePlan, tc.page+" ") {
			t.Errorf("%s: the page does not use %s", tc.name, tc.page)
		}
		if !strings.Contains(countPlan, tc.count+" ") && !strings.HasSuffix(countPlan, tc.count) {
			t.Errorf("%s: the count does not use %s", tc.name, tc.count)
		}
	}
}

// explain is the plan of sql, made after settings are queued.
func explain(t *testing.T, ctx context.Context, s *Store, sql string, args []any, settings ...func(*pgx.Batch)) string {
	t.Helper()
	var lines []string
	b := &pgx.Batch{}
	for _, queue := range settings {
		queue(b)
	}
	b.Queue("EXPLAIN "+sql, args...).Query(func(rows pgx.Rows) (err error) {
		lines, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// cheapWorkers makes parallel workers free to the planner for the rest of
// the batch's transaction, so that a plan test sees them wherever they are
// allowed.
func cheapWorkers(b *pgx.Batch) {
	b.Queue(`SELECT set_config('parallel_setup_cost', '0', true), set_config('parallel_tuple_cost', '0', true),
		set_config('min_parallel_table_scan_size', '0', true), set_config('min_parallel_index_scan_size', '0', true)`)
}
