package sqlite_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kycengine/kyc/adapters/readmodel/sqlite"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// BenchmarkListAtScale fills a generation with READ_BENCH_ROWS synthetic
// customers (default 200,000) through PutCustomers, then times list queries
// of every filter alone and in combinations, on the first page and a deep
// one, count included. READ_BENCH_DB names a file to keep and reuse, so the
// fill is paid once:
//
//	READ_BENCH_ROWS=1000000 READ_BENCH_DB=/tmp/read.db go test -run '^$' \
//	  -bench ListAtScale -benchtime 1x ./adapters/readmodel/sqlite/
//
// Each query runs READ_BENCH_RUNS times (default 3); its p95 is the nearest
// rank of those runs, so with few runs it is the slowest one. The log names
// the 25 slowest queries, or every one with READ_BENCH_ALL=1, so runs before
// and after a change can be compared query by query. READ_BENCH_ONLY keeps
// the queries whose name contains it.
func BenchmarkListAtScale(b *testing.B) {
	envInt := func(name string, def int) int {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want a positive number", name, v)
		}
		return n
	}
	n := envInt("READ_BENCH_ROWS", 200_000)
	runs := envInt("READ_BENCH_RUNS", 3)
	logAll := os.Getenv("READ_BENCH_ALL") == "1"
	path := os.Getenv("READ_BENCH_DB")
	if path == "" {
		path = filepath.Join(b.TempDir(), "read.db")
	}
	ctx := context.Background()
	start := time.Now()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	// Opening a file of an older release upgrades it (see upgrade.go).
	b.Logf("open: %s", time.Since(start))
	if st, ok, err := s.State(ctx, projections.CustomersProjection); err != nil {
		b.Fatal(err)
	} else if !ok {
		fill(b, s, n)
	} else {
		b.Logf("reusing %s, generation %d", path, st.Active)
	}

	queries := benchQueries()
	if only := os.Getenv("READ_BENCH_ONLY"); only != "" {
		queries = slices.DeleteFunc(queries, func(q benchQuery) bool { return !strings.Contains(q.name, only) })
	}
	b.ResetTimer()
	for range b.N {
		var all []time.Duration
		type slow struct {
			d    time.Duration
			name string
			rows int
		}
		var worst []slow
		for _, bq := range queries {
			for _, page := range []int{1, 500} {
				q := bq.q
				q.Page, q.PerPage, q.Now = page, 20, time.Date(2025, 6, 15, 0, 0, 0, 0, time.UTC)
				var ds []time.Duration
				var total int
				for range runs {
					start := time.Now()
					p, err := s.ListCustomers(ctx, q.Normalized())
					if err != nil {
						b.Fatal(err)
					}
					ds = append(ds, time.Since(start))
					total = p.Total
				}
				slices.Sort(ds)
				all = append(all, ds...)
				p95 := ds[(95*len(ds)+99)/100-1]
				worst = append(worst, slow{p95, fmt.Sprintf("%s page %d", bq.name, page), total})
			}
		}
		slices.Sort(all)
		nq, over := len(worst), 0
		for _, w := range worst {
			if w.d > 50*time.Millisecond {
				over++
			}
		}
		if !logAll {
			slices.SortFunc(worst, func(a, b slow) int { return int(b.d - a.d) })
			worst = worst[:min(25, len(worst))]
		}
		for _, w := range worst {
			b.Logf("%8.1f ms  total %7d  %s", float64(w.d.Microseconds())/1000, w.rows, w.name)
		}
		p := func(f float64) float64 { return float64(all[int(f*float64(len(all)-1))].Microseconds()) / 1000 }
		b.Logf("%d list queries, %d runs each: %d with p95 over 50 ms; all runs: p50 %.1f ms, p95 %.1f ms, max %.1f ms",
			nq, runs, over, p(0.5), p(0.95), p(1))
		b.ReportMetric(p(0.95), "p95-ms")
		b.ReportMetric(p(0.5), "p50-ms")
	}
}

type benchQuery struct {
	name string
	q    projections.ListQuery
}

func benchQueries() []benchQuery {
	at := func(s string) time.Time {
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	age := func(n int) *int { return &n }
	filters := []benchQuery{
		{"none", projections.ListQuery{}},
		{"scope", projections.ListQuery{ScopeCompany: "co-3"}},
		{"companies", projections.ListQuery{Companies: []string{"co-1", "co-7"}}},
		{"q name", projections.ListQuery{Q: "mar"}},
		{"q email", projections.ListQuery{Q: "user12345"}},
		{"q two words", projections.ListQuery{Q: "ana sil"}},
		{"status", projections.ListQuery{Statuses: []string{"approved"}}},
		{"statuses", projections.ListQuery{Statuses: []string{"rejected", "in_review"}}},
		{"created", projections.ListQuery{Created: projections.TimeRange{From: at("2025-01-01"), To: at("2025-02-01")}}},
		{"updated", projections.ListQuery{Updated: projections.TimeRange{From: at("2025-03-01")}}},
		{"doc type", projections.ListQuery{DocumentTypes: []string{"passport"}}},
		{"nationality", projections.ListQuery{Nationalities: []string{"PT"}}},
		{"expiry", projections.ListQuery{Expiry: projections.DateRange{From: "2025-01-01", To: "2025-03-31"}}},
		{"risk", projections.ListQuery{Risks: []string{domain.RiskHigh}}},
		{"age", projections.ListQuery{AgeMin: age(30), AgeMax: age(40)}},
		{"video", projections.ListQuery{VideoCallStatuses: []string{"BAD QUALITY"}}},
		{"level", projections.ListQuery{VerificationLevels: []int{2}}},
		{"vstatus", projections.ListQuery{VerificationStatuses: []string{domain.VerificationIdentified}}},
		{"state", projections.ListQuery{States: []string{"blocked"}}},
		{"country", projections.ListQuery{Countries: []string{"ES"}}},
		{"tag", projections.ListQuery{Tags: []string{"vip"}}},
		{"role", projections.ListQuery{AccessRoles: []string{"admin"}}},
		{"group", projections.ListQuery{AccessGroups: []string{"north"}}},
		{"agent", projections.ListQuery{Agents: []string{"agent-3"}}},
		{"referral", projections.ListQuery{ReferralCodes: []string{"REF2"}}},
		{"status+risk", projections.ListQuery{Statuses: []string{"approved"}, Risks: []string{domain.RiskNormal}}},
		{"status+nationality+level", projections.ListQuery{Statuses: []string{"pending"}, Nationalities: []string{"PT"}, VerificationLevels: []int{1}}},
		{"tag+status", projections.ListQuery{Tags: []string{"vip"}, Statuses: []string{"approved"}}},
		{"scope+status", projections.ListQuery{ScopeCompany: "co-3", Statuses: []string{"approved"}}},
		{"scope+q", projections.ListQuery{ScopeCompany: "co-3", Q: "mar"}},
		{"scope+tag+risk", projections.ListQuery{ScopeCompany: "co-3", Tags: []string{"vip"}, Risks: []string{domain.RiskHigh}}},
		{"created+status", projections.ListQuery{Created: projections.TimeRange{From: at("2025-01-01"), To: at("2025-04-01")}, Statuses: []string{"approved"}}},
		{"country+vstatus+age", projections.ListQuery{Countries: []string{"PT"}, VerificationStatuses: []string{domain.VerificationNotVerified}, AgeMin: age(25)}},
		{"doc+expiry+video", projections.ListQuery{DocumentTypes: []string{"passport"}, Expiry: projections.DateRange{To: "2026-01-01"}, VideoCallStatuses: []string{"COMPLETE"}}},
	}
	var out []benchQuery
	for _, f := range filters {
		for _, key := range projections.SortKeys {
			q := f.q
			q.Sort, q.Desc = key, key != projections.SortName
			out = append(out, benchQuery{f.name + " by " + string(key), q})
		}
	}
	return out
}

func fill(b *testing.B, s *sqlite.Store, n int) {
	ctx := context.Background()
	gen, err := s.CreateGeneration(ctx, projections.CustomersProjection, 1)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const batch = 1000
	rows := make([]projections.CustomerRow, 0, batch)
	start := time.Now()
	for i := range n {
		rows = append(rows, benchCustomer(rng, i))
		if len(rows) == batch || i == n-1 {
			if err := s.PutCustomers(ctx, gen, domain.Position{Commit: uint64(i), Prepare: uint64(i)}, rows); err != nil {
				b.Fatal(err)
			}
			rows = rows[:0]
		}
	}
	d := time.Since(start)
	b.Logf("put %d new customers in batches of %d: %.1fs, %.0f rows/s", n, batch, d.Seconds(), float64(n)/d.Seconds())
	// Replacing rows as the engine does: load, apply an event (a new
	// status), put back; before the activation, as a rebuild does, and
	// after it, as live events do, paying for every index.
	replace := func(what string, count int, pos uint64) {
		start := time.Now()
		for i := 0; i < count; i += batch {
			var ids []string
			for range batch {
				ids = append(ids, fmt.Sprintf("cus-%08d", rng.IntN(n)))
			}
			loaded, err := s.LoadCustomers(ctx, gen, ids)
			if err != nil {
				b.Fatal(err)
			}
			rows = rows[:0]
			for _, r := range loaded {
				r.Customer.Status = benchStat[rng.IntN(len(benchStat))]
				t := r.Customer.CreatedAt.Add(time.Hour)
				r.Customer.LastStatusUpdate = &t
				r.Customer.Revision++
				rows = append(rows, r)
			}
			p := pos + uint64(i)
			if err := s.PutCustomers(ctx, gen, domain.Position{Commit: p, Prepare: p}, rows); err != nil {
				b.Fatal(err)
			}
		}
		d := time.Since(start)
		b.Logf("load+replace %d customers in batches of %d %s: %.1fs, %.0f rows/s", count, batch, what, d.Seconds(), float64(count)/d.Seconds())
	}
	replace("before activation", 50_000, uint64(n))
	start = time.Now()
	if err := s.Activate(ctx, projections.CustomersProjection, gen); err != nil {
		b.Fatal(err)
	}
	b.Logf("activate: %s", time.Since(start))
	replace("after activation", 10_000, uint64(n+50_000))
}

var (
	benchFirst = []string{"Ana", "Maria", "João", "Marco", "Sofia", "Pedro", "Chloé", "Hiro", "Fatima", "Lucas", "Emma", "Noah", "Olga", "Ivan", "Mariana"}
	benchLast  = []string{"Silva", "Santos", "Ferreira", "Smith", "Müller", "Dubois", "Rossi", "Kowalski", "Sato", "García", "Martins", "Costa"}
	benchNat   = []string{"PT", "ES", "FR", "DE", "IT", "PL", "JP", "US", "BR", "GB", "NL", "BE", "CH", "AT", "SE", ""}
	benchStat  = []string{"pending", "pending", "pending", "approved", "approved", "rejected", "in_review", "active", "blocked", "suspended"}
	benchRisks = []string{"", domain.RiskNormal, domain.RiskNormal, domain.RiskHigh, domain.RiskVeryHigh}
	benchDocs  = []string{"passport", "id_card", "driving_license", "utility_bill"}
	benchTags  = []string{"vip", "pep", "watch", "new", "legacy", "b2b", "retail", "partner"}
)

func benchCustomer(rng *rand.Rand, i int) projections.CustomerRow {
	created := time.Date(2024, 6, 15, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(int64(365 * 24 * time.Hour))))
	c := &domain.Customer{
		ID:                fmt.Sprintf("cus-%08d", i),
		PublicID:          fmt.Sprintf("P%08d", i),
		CompanyID:         fmt.Sprintf("co-%d", min(rng.IntN(40), rng.IntN(40))), // skewed: low numbers are big companies
		Status:            benchStat[rng.IntN(len(benchStat))],
		Name:              &domain.Name{First: benchFirst[rng.IntN(len(benchFirst))], Last: benchLast[rng.IntN(len(benchLast))]},
		IDCardNumber:      fmt.Sprintf("ID%09d", rng.IntN(1_000_000_000)),
		Nationality:       benchNat[rng.IntN(len(benchNat))],
		Emails:            []string{fmt.Sprintf("user%d@example.com", i)},
		Phones:            []string{fmt.Sprintf("+351 9%08d", rng.IntN(100_000_000))},
		Address:           &domain.Address{Country: benchNat[rng.IntN(len(benchNat))], City: "Lisbon", Lines: []string{"Rua Augusta 1"}},
		ReferralCode:      []string{"", "", "", "REF1", "REF2", "SUMMER"}[rng.IntN(6)],
		CreatedByAgent:    fmt.Sprintf("agent-%d", rng.IntN(30)),
		AccessRoles:       []string{[]string{"admin", "reviewer", "viewer"}[rng.IntN(3)]},
		AccessGroups:      []string{[]string{"north", "south", "east", "west"}[rng.IntN(4)]},
		Tags:              []string{benchTags[rng.IntN(len(benchTags))]},
		Risk:              benchRisks[rng.IntN(len(benchRisks))],
		VideoCallStatus:   domain.VideoCallStatuses[rng.IntN(len(domain.VideoCallStatuses))],
		VerificationLevel: rng.IntN(6),
		EmailVerified:     rng.IntN(2) == 0,
		PhoneVerified:     rng.IntN(2) == 0,
		ActiveServices:    []string{"aml"},
		CreatedAt:         created,
		Revision:          1,
	}
	if rng.IntN(10) > 0 {
		c.BirthDate = fmt.Sprintf("%04d-%02d-%02d", 1940+rng.IntN(66), 1+rng.IntN(12), 1+rng.IntN(28))
	}
	for d := range 1 + rng.IntN(3) {
		c.Documents = append(c.Documents, domain.Document{
			ID: fmt.Sprintf("doc-%d", d), Type: benchDocs[rng.IntN(len(benchDocs))], Country: "PT",
			ExpiryDate: fmt.Sprintf("%04d-%02d-%02d", 2022+rng.IntN(12), 1+rng.IntN(12), 1+rng.IntN(28)),
		})
	}
	if rng.IntN(3) > 0 {
		t := created.Add(time.Duration(rng.Int64N(int64(30 * 24 * time.Hour))))
		c.LastStatusUpdate = &t
	}
	return projections.CustomerRow{
		Customer:           c,
		VerificationStatus: c.VerificationStatus(),
		State:              []string{"", "active", "blocked", "suspended"}[rng.IntN(4)],
		AggregatedStatus:   "pending",
	}
}
