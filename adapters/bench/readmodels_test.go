package bench

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/eventstore/embedded"
	"github.com/kycengine/kyc/adapters/readmodel/sqlite"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
	"github.com/kycengine/kyc/schemas"
)

// Targets the read side is held to.
const (
	targetRebuild = 150_000 // events/s per projection
	targetListP95 = 50 * time.Millisecond
	targetLagP99  = 100 * time.Millisecond
)

// BenchmarkReadModels measures the read side at scale, in one run:
//
//	(a) a raw SQLite baseline: the rows the projections write, inserted
//	    with plain prepared statements, no projection logic;
//	(b) the rebuild rate of each projection over the generated log;
//	(c) list latency for every filter and a few combinations, first and
//	    deep page;
//	(d) projection lag while 64 writers append through the service.
//
// KYC_BENCH_CUSTOMERS sets the number of customers (default 1,000,000, about
// ten events each); KYC_BENCH_DATA names a folder that keeps the generated
// log between runs.
func BenchmarkReadModels(b *testing.B) {
	ds := openBenchDataset(b)
	ctx := context.Background()
	base := baselineReadModels(b, ctx, ds.store, ds.scratch, ds.m, ds.ls, ds.codec, ds.say)

	rm, err := sqlite.Open(ctx, filepath.Join(ds.scratch, "read.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rm.Close() })
	obs := &lagObserver{}
	eng := rebuildEngine(b, ctx, ds, ds.store, rm, obs)
	var rebuilds []rebuildFigure
	for _, name := range []string{projections.CustomersProjection, projections.AuditProjection} {
		rebuilds = append(rebuilds, rebuild(b, ctx, eng, name, ds.say))
	}

	lists := listLatencies(b, ctx, rm, "", ds.say)
	lag := lagBothWays(b, ctx, ds.store, rm, eng, obs, ds)

	report(b, ds.n, ds.m, base, rebuilds, lists, lag, targetLagP99)
}

// BenchmarkReadModelsLag runs (d) of BenchmarkReadModels alone, with the
// writers held as kyc serve holds them by default, so that a change to the
// live path can be measured at 1,000,000 customers in a minute. It needs
// KYC_BENCH_DATA (see keptReadModels).
func BenchmarkReadModelsLag(b *testing.B) {
	ds, rm, eng, obs := keptReadModels(b)
	ctx := context.Background()
	lag := projectionLag(b, ctx, ds.store, rm, eng, eng, obs, ds.ls, ds.codec, ds.say, heldLabel(b))
	printLag(b, fmt.Sprintf("read models at %d customers\n", ds.n), []lagFigure{lag}, targetLagP99)
}

// BenchmarkReadModelsLists runs (c) of BenchmarkReadModels alone, on the
// kept read models (see keptReadModels); KYC_BENCH_LIST, when set, keeps
// the queries whose name contains it.
func BenchmarkReadModelsLists(b *testing.B) {
	ds, rm, _, _ := keptReadModels(b)
	lists := listLatencies(b, context.Background(), rm, os.Getenv("KYC_BENCH_LIST"), ds.say)
	printLists(b, fmt.Sprintf("read models at %d customers", ds.n), lists)
}

// printLists prints the list table of (c) under a title and reports how
// many were over the target and the worst p95.
func printLists(b *testing.B, title string, lists []listFigure) {
	var out strings.Builder
	fmt.Fprintf(&out, "\n%s\n", title)
	over, worst := reportLists(&out, lists)
	fmt.Print(out.String() + "\n")
	b.ReportMetric(float64(over), "list-over-target")
	b.ReportMetric(float64(worst.Microseconds())/1000, "list-worst-p95-ms")
}

// keptReadModels opens the log kept in KYC_BENCH_DATA and the read models
// kept beside it (read.db), building them the first time (the rebuilds of
// BenchmarkReadModels), and starts an engine that follows the log from
// them. Without KYC_BENCH_DATA the benchmark would repeat
// BenchmarkReadModels, which make bench runs anyway, so it is skipped.
func keptReadModels(b *testing.B) (*benchDataset, *sqlite.Store, *projections.Engine, *lagObserver) {
	if os.Getenv("KYC_BENCH_DATA") == "" {
		b.Skip("this benchmark measures on a kept log and read model: set KYC_BENCH_DATA (BenchmarkReadModels measures the same without it)")
	}
	ds := openBenchDataset(b)
	ctx := context.Background()
	path := filepath.Join(ds.kept, "read.db")
	if ds.generated {
		// Read models of the log this one replaced.
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
				b.Fatal(err)
			}
		}
	}
	rm, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rm.Close() })
	built := true
	for _, name := range []string{projections.CustomersProjection, projections.AuditProjection} {
		st, ok, err := rm.State(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		built = built && ok && st.Active != 0
	}
	obs := &lagObserver{}
	eng := benchEngine(b, ctx, ds, ds.store, rm, obs, !built)
	if built {
		ds.say("read models kept in %s", path)
		waitCaughtUp(b, ctx, eng, ds.say)
	} else {
		for _, name := range []string{projections.CustomersProjection, projections.AuditProjection} {
			rebuild(b, ctx, eng, name, ds.say)
		}
	}
	return ds, rm, eng, obs
}

// waitCaughtUp returns once every projection of eng has applied the whole
// log, so that no catch-up counts as lag.
func waitCaughtUp(b *testing.B, ctx context.Context, eng *projections.Engine, say func(string, ...any)) {
	start := time.Now()
	for {
		sts, err := eng.Status(ctx)
		if err != nil {
			b.Fatal(err)
		}
		behind := int64(0)
		for _, st := range sts {
			if st.Error != "" {
				b.Fatalf("projection %s: %s", st.Name, st.Error)
			}
			behind += st.LagEvents
		}
		if behind == 0 {
			say("read models caught up with the log in %s", time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > 30*time.Minute {
			b.Fatalf("read models still %d events behind the log after 30 minutes", behind)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// benchDataset is the generated log the read-model benchmarks share.
type benchDataset struct {
	n       int
	store   *embedded.Store
	m       marker
	scratch string // for files removed at the end
	// kept is the folder KYC_BENCH_DATA names, which outlives the run; ""
	// when the log is generated for this run only. generated: the log was
	// made by this run, so nothing kept beside it was built from it.
	kept      string
	generated bool
	codec     *domain.Codec
	ls        *domain.Lifecycles
	say       func(string, ...any)
}

// openBenchDataset generates the log of KYC_BENCH_CUSTOMERS customers, or
// reuses the one kept in KYC_BENCH_DATA.
func openBenchDataset(b *testing.B) *benchDataset {
	n := 1_000_000
	if v := os.Getenv("KYC_BENCH_CUSTOMERS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			b.Fatalf("KYC_BENCH_CUSTOMERS=%q: want a number of at least 1000", v)
		}
	}
	dataDir := os.Getenv("KYC_BENCH_DATA")
	kept := dataDir
	if dataDir == "" {
		dataDir = b.TempDir()
	} else if err := os.MkdirAll(dataDir, 0o755); err != nil {
		b.Fatal(err)
	}
	// Baseline and read model files go next to the log, on the same disk,
	// and are removed at the end: only the log is worth keeping.
	scratch, err := os.MkdirTemp(dataDir, "scratch-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(scratch) })
	ctx := context.Background()
	say := func(format string, args ...any) { fmt.Printf("readmodels: "+format+"\n", args...) }

	codec, ls := benchDomain(b)
	review, _ := ls.Latest("kyc-review")
	banking, _ := ls.Latest("banking")
	gen := &generator{n: n, codec: codec, review: review, banking: banking, start: time.Now().Add(-genSpan - 24*time.Hour)}
	say("data folder %s; %d customers", dataDir, n)
	store, m, reused, err := openDataset(ctx, dataDir, n, gen, say)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	if reused {
		say("reused the generated log (%d customers, %d events, generated in %s)", m.Customers, m.Events, m.Took)
	} else {
		say("generated %d customers, %d events in %s", m.Customers, m.Events, m.Took)
	}
	return &benchDataset{n: n, store: store, m: m, scratch: scratch, kept: kept, generated: !reused, codec: codec, ls: ls, say: say}
}

// benchDomain returns the codec and the lifecycles every benchmark decides
// and folds with.
func benchDomain(tb testing.TB) (*domain.Codec, *domain.Lifecycles) {
	ls, err := domain.LoadLifecycles(schemas.Lifecycles(), "kyc-review")
	if err != nil {
		tb.Fatal(err)
	}
	return domain.NewCodec(), ls
}

// rebuildEngine starts an engine of both projections from events into rm,
// set up so that Rebuild measures the rebuild path. On an empty read model
// Start would fill each projection from the start of the log as its live
// generation; the benchmark wants a new generation filled while the active
// one serves reads, so each projection first gets an empty active generation
// whose checkpoint is the head of the log.
func rebuildEngine(b *testing.B, ctx context.Context, ds *benchDataset, events projections.EventSource, rm projections.Store, obs projections.Observer) *projections.Engine {
	return benchEngine(b, ctx, ds, events, rm, obs, true)
}

// benchEngine starts an engine running both projections on rm. With
// empty, it first gives each an empty active generation at the head of the
// log, for Rebuild to replace; otherwise the engine follows the log from the
// generations rm holds.
func benchEngine(b *testing.B, ctx context.Context, ds *benchDataset, events projections.EventSource, rm projections.Store, obs projections.Observer, empty bool) *projections.Engine {
	customers, err := projections.NewCustomers(rm, ds.codec, ds.ls)
	if err != nil {
		b.Fatal(err)
	}
	audit, err := projections.NewAudit(rm, ds.codec)
	if err != nil {
		b.Fatal(err)
	}
	eng, err := projections.NewEngine(projections.EngineConfig{Events: events, Store: rm, Projections: []projections.Projection{customers, audit}, Observer: obs, MaxLag: benchMaxReadLag(b)})
	if err != nil {
		b.Fatal(err)
	}
	if empty {
		activateEmpty(b, ctx, rm, ds.m.Head, customers, audit)
	}
	engCtx, stopEngine := context.WithCancel(ctx)
	if err := eng.Start(engCtx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stopEngine(); eng.Wait() })
	return eng
}

// activateEmpty gives each of ps an empty active generation whose
// checkpoint is head.
func activateEmpty(b *testing.B, ctx context.Context, rm projections.Store, head domain.Position, ps ...projections.Projection) {
	for _, p := range ps {
		g, err := rm.CreateGeneration(ctx, p.Name(), p.Version())
		if err == nil {
			// The store remembers the checkpoint it last read (fencing).
			_, err = rm.Checkpoint(ctx, p.Name(), g)
		}
		if err == nil {
			if p.Name() == projections.CustomersProjection {
				err = rm.PutCustomers(ctx, g, head, nil)
			} else {
				err = rm.AppendAudit(ctx, g, head, nil)
			}
		}
		if err == nil {
			err = rm.Activate(ctx, p.Name(), g)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// ---------------------------------------------------------------- (a)

type baselineFigure struct {
	name    string
	rows    int64
	events  int64 // events the rows stand for
	elapsed time.Duration
}

func (f baselineFigure) rate() float64 { return float64(f.events) / f.elapsed.Seconds() }

// sampleCustomer is a folded customer of the log with the columns the
// customers projection derives for it.
type sampleCustomer struct {
	c                         *domain.Customer
	vstatus, state, aggStatus string
	doc                       []byte
	terms                     [][2]string // (field, value) without the customer's own ids
}

type sampleAudit struct {
	e   projections.AuditEntry
	doc []byte
}

// sampleRows folds the first events of the log into customers and audit
// entries, the rows the baseline copies. Folding is not timed.
func sampleRows(ctx context.Context, store *embedded.Store, ls *domain.Lifecycles, codec *domain.Codec, limit int) ([]sampleCustomer, []sampleAudit, error) {
	byID := map[string]*domain.Customer{}
	var order []string
	var audits []sampleAudit
	companies := map[string]string{}
	after := domain.Start
	for len(audits) < limit {
		page, err := store.ReadAll(ctx, after, 5000)
		if err != nil {
			return nil, nil, err
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			id, ok := domain.CustomerIDFromStream(e.Stream)
			if !ok {
				continue
			}
			rec, err := codec.DecodeRecorded(e)
			if err != nil {
				return nil, nil, err
			}
			c := byID[id]
			if c == nil {
				c = &domain.Customer{}
				byID[id] = c
				order = append(order, id)
			}
			c.Apply(rec.Event, e)
			if reg, ok := rec.Event.(*domain.CustomerRegistered); ok {
				companies[id] = reg.CompanyID
			}
			entry, err := projections.AuditEntryOf(rec.Event, e, companies[id])
			if err != nil {
				return nil, nil, err
			}
			doc, err := json.Marshal(entry)
			if err != nil {
				return nil, nil, err
			}
			audits = append(audits, sampleAudit{entry, doc})
		}
		after = page[len(page)-1].Position
	}
	out := make([]sampleCustomer, 0, len(order))
	for _, id := range order {
		c := byID[id]
		if !c.Exists() {
			continue
		}
		l, _ := ls.Get(c.Lifecycle, c.LifecycleVersion)
		doc, err := json.Marshal(c)
		if err != nil {
			return nil, nil, err
		}
		s := sampleCustomer{c: c, vstatus: c.VerificationStatus(), state: c.State(l), aggStatus: c.AggregatedStatus(l), doc: doc}
		own := map[string]bool{strings.ToLower(c.ID): true, strings.ToLower(c.PublicID): true}
		for _, t := range projections.SearchTerms(c) {
			if !own[t] {
				s.terms = append(s.terms, [2]string{"q", t})
			}
		}
		for _, v := range c.Tags {
			s.terms = append(s.terms, [2]string{"tag", v})
		}
		for _, v := range c.AccessRoles {
			s.terms = append(s.terms, [2]string{"access_role", v})
		}
		for _, v := range c.AccessGroups {
			s.terms = append(s.terms, [2]string{"access_group", v})
		}
		for _, d := range c.Documents {
			s.terms = append(s.terms, [2]string{"doc_type", d.Type})
			if d.ExpiryDate != "" {
				s.terms = append(s.terms, [2]string{"expiry", d.ExpiryDate})
			}
		}
		slices.SortFunc(s.terms, func(a, b [2]string) int { return strings.Compare(a[0]+"\x00"+a[1], b[0]+"\x00"+b[1]) })
		s.terms = slices.Compact(s.terms)
		out = append(out, s)
	}
	return out, audits, nil
}

// baselineReadModels inserts, into the read model's own tables and indexes
// (the same DDL templates, generation 1) in a fresh file with the read
// model's pragmas, one customers row (plus its search and filter terms) per
// customer and one audit row per event: what the two projections end up
// writing for the log, with none of their work (no decoding, folding,
// loading or replacing). Values are copied from customers folded from the
// start of the log, with fresh ids, so documents have realistic sizes.
func baselineReadModels(b *testing.B, ctx context.Context, store *embedded.Store, dir string, m marker, ls *domain.Lifecycles, codec *domain.Codec, say func(string, ...any)) []baselineFigure {
	samples, audits, err := sampleRows(ctx, store, ls, codec, 100_000)
	if err != nil {
		b.Fatal(err)
	}
	if len(samples) == 0 || len(audits) == 0 {
		b.Fatal("baseline: no sample rows")
	}
	path := filepath.Join(dir, "baseline.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"+
		"&_pragma=cache_size(-131072)&_pragma=temp_store(MEMORY)")
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		db.Close()
		for _, s := range []string{"", "-wal", "-shm"} {
			os.Remove(path + s)
		}
	}()
	db.SetMaxOpenConns(1)
	for _, name := range []string{projections.CustomersProjection, projections.AuditProjection} {
		ddl, err := fs.ReadFile(schemas.ReadModels("sqlite"), name+".up.sql")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, strings.ReplaceAll(string(ddl), "{gen}", "1")); err != nil {
			b.Fatal(err)
		}
	}
	// The read model's schema may keep a customer's document and terms in
	// a table of their own; the baseline writes them where it does.
	var docsApart bool
	if err := db.QueryRowContext(ctx, "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'customer_docs_g1'").Scan(&docsApart); err != nil {
		b.Fatal(err)
	}
	say("baseline: inserting %d customers rows and %d audit rows (from %d sampled customers, %d sampled events)", m.Customers, m.Events, len(samples), len(audits))

	// Customers, with their terms and per-company counts.
	ids := make([]string, m.Customers)
	start := time.Now()
	var termRows int64
	step := genSpan.Nanoseconds() / int64(m.Customers)
	t0 := time.Now().Add(-genSpan).UnixNano()
	var termBuf []byte
	const customersPerTx = 5000
	for lo := 0; lo < m.Customers; lo += customersPerTx {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		cols, marks := "", ""
		if !docsApart {
			cols, marks = ", terms, doc", ", ?, ?"
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO customers_g1 (id, company_id, status, nationality, risk, video_call_status, verification_level,
			verification_status, state, country, created_by_agent, referral_code, birth_date, created_at, last_status_update, name_sort, revision,
			aggregated_status`+cols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?`+marks+`)`)
		if err != nil {
			b.Fatal(err)
		}
		var docs *sql.Stmt
		if docsApart {
			if docs, err = tx.PrepareContext(ctx, "INSERT INTO customer_docs_g1 (seq, terms, doc) VALUES (?, ?, ?)"); err != nil {
				b.Fatal(err)
			}
		}
		term, err := tx.PrepareContext(ctx, "INSERT INTO customer_terms_g1 (field, value, created_at, seq, company_id) VALUES (?, ?, ?, ?, ?)")
		if err != nil {
			b.Fatal(err)
		}
		counts := map[string]int64{}
		for i := lo; i < min(lo+customersPerTx, m.Customers); i++ {
			s := &samples[i%len(samples)]
			c := s.c
			id := uuid.Must(uuid.NewV7()).String()
			ids[i] = id
			public := fmt.Sprintf("c%09d", i)
			created := t0 + int64(i)*step
			var updated int64
			if c.LastStatusUpdate != nil {
				updated = created + c.LastStatusUpdate.Sub(c.CreatedAt).Nanoseconds()
			}
			terms := append(slices.Clip(s.terms), [2]string{"q", id}, [2]string{"q", public})
			termBuf = termBuf[:0]
			for _, t := range terms {
				termBuf = append(termBuf, t[0][0])
				termBuf = binary.AppendUvarint(termBuf, uint64(len(t[1])))
				termBuf = append(termBuf, t[1]...)
			}
			args := []any{id, c.CompanyID, c.Status, c.Nationality, c.Risk, c.VideoCallStatus, int64(c.VerificationLevel),
				s.vstatus, s.state, projections.Country(c), c.CreatedByAgent, c.ReferralCode, c.BirthDate, created, updated,
				projections.NameSortKey(c), int64(c.Revision), s.aggStatus}
			if !docsApart {
				args = append(args, termBuf, s.doc)
			}
			res, err := ins.ExecContext(ctx, args...)
			if err != nil {
				b.Fatal(err)
			}
			seq, _ := res.LastInsertId()
			if docsApart {
				if _, err := docs.ExecContext(ctx, seq, termBuf, s.doc); err != nil {
					b.Fatal(err)
				}
			}
			for _, t := range terms {
				if _, err := term.ExecContext(ctx, t[0], t[1], created, seq, c.CompanyID); err != nil {
					b.Fatal(err)
				}
			}
			termRows += int64(len(terms))
			counts[c.CompanyID]++
		}
		for company, k := range counts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO customer_counts_g1 (company_id, n) VALUES (?, ?)
				ON CONFLICT (company_id) DO UPDATE SET n = n + excluded.n`, company, k); err != nil {
				b.Fatal(err)
			}
		}
		ins.Close()
		term.Close()
		if docs != nil {
			docs.Close()
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	cust := baselineFigure{name: "(a) raw insert: customers rows + terms", rows: int64(m.Customers) + termRows, events: m.Events, elapsed: time.Since(start)}
	say("baseline: customers rows in %s (%.0f events/s)", cust.elapsed.Round(time.Millisecond), cust.rate())

	// Audit: one row per event, the customer's company, per-company counts.
	start = time.Now()
	perCustomer := float64(m.Events) / float64(m.Customers)
	const auditPerTx = 20000
	for lo := int64(0); lo < m.Events; lo += auditPerTx {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO audit_g1 (position_commit, position_prepare, event_id, customer_id, company_id,
			revision, type, actor_id, occurred_at, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			b.Fatal(err)
		}
		comp, err := tx.PrepareContext(ctx, "INSERT OR REPLACE INTO audit_companies_g1 (customer_id, company_id) VALUES (?, ?)")
		if err != nil {
			b.Fatal(err)
		}
		counts := map[string]int64{}
		for k := lo; k < min(lo+auditPerTx, m.Events); k++ {
			a := &audits[k%int64(len(audits))]
			e := &a.e
			customer := ids[min(int(float64(k)/perCustomer), len(ids)-1)]
			if _, err := ins.ExecContext(ctx, k+1, k+1, uuid.Must(uuid.NewV7()).String(), customer, e.CompanyID, int64(e.Revision), e.Type,
				e.Actor.ID, e.OccurredAt.UnixNano(), a.doc); err != nil {
				b.Fatal(err)
			}
			if e.Type == "CustomerRegistered" {
				if _, err := comp.ExecContext(ctx, customer, e.CompanyID); err != nil {
					b.Fatal(err)
				}
			}
			counts[e.CompanyID]++
		}
		for company, k := range counts {
			if _, err := tx.ExecContext(ctx, `INSERT INTO audit_counts_g1 (company_id, n) VALUES (?, ?)
				ON CONFLICT (company_id) DO UPDATE SET n = n + excluded.n`, company, k); err != nil {
				b.Fatal(err)
			}
		}
		ins.Close()
		comp.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	aud := baselineFigure{name: "(a) raw insert: audit rows", rows: m.Events, events: m.Events, elapsed: time.Since(start)}
	say("baseline: audit rows in %s (%.0f events/s)", aud.elapsed.Round(time.Millisecond), aud.rate())
	both := baselineFigure{name: "(a) raw insert: both", rows: cust.rows + aud.rows, events: m.Events, elapsed: cust.elapsed + aud.elapsed}
	return []baselineFigure{cust, aud, both}
}

// ---------------------------------------------------------------- (b)

type rebuildFigure struct {
	name    string
	events  int64
	elapsed time.Duration
}

func (f rebuildFigure) rate() float64 { return float64(f.events) / f.elapsed.Seconds() }

// rebuild fills a new generation of one projection from the whole log while
// the other generation is active, and times it up to the swap.
func rebuild(b *testing.B, ctx context.Context, eng *projections.Engine, name string, say func(string, ...any)) rebuildFigure {
	start := time.Now()
	var applied int64
	tenth := int64(-1)
	err := eng.Rebuild(ctx, name, func(p projections.RebuildProgress) {
		applied = p.Applied
		if p.Total > 0 {
			if t := p.Applied * 10 / p.Total; t > tenth {
				tenth = t
				say("rebuild %s: %3d%%  %d of %d events, %.0f events/s", name, t*10, p.Applied, p.Total, float64(p.Applied)/time.Since(start).Seconds())
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	f := rebuildFigure{name: name, events: applied, elapsed: time.Since(start)}
	say("rebuild %s: %d events in %s, %.0f events/s", name, f.events, f.elapsed.Round(time.Millisecond), f.rate())
	return f
}

// ---------------------------------------------------------------- (c)

type listFigure struct {
	name        string
	page, total int
	runs        int
	p50, p95    time.Duration
	p99         time.Duration
	mismatched  int
}

func listCases(now time.Time) []struct {
	name string
	q    projections.ListQuery
} {
	ints := func(v int) *int { return &v }
	month := 30 * 24 * time.Hour
	mid := now.Add(-genSpan / 2)
	type c = struct {
		name string
		q    projections.ListQuery
	}
	return []c{
		{"q name prefix", projections.ListQuery{Q: "gra"}},
		{"q email prefix", projections.ListQuery{Q: "sophie.knu"}},
		{"status", projections.ListQuery{Statuses: []string{"PENDING_REVIEW"}}},
		{"created range", projections.ListQuery{Created: projections.TimeRange{From: mid, To: mid.Add(month)}}},
		{"updated range", projections.ListQuery{Updated: projections.TimeRange{From: now.Add(-month)}}},
		{"company", projections.ListQuery{Companies: []string{"globex"}}},
		{"document_type", projections.ListQuery{DocumentTypes: []string{"RESIDENCE_PERMIT"}}},
		{"nationality", projections.ListQuery{Nationalities: []string{"DE"}}},
		{"expiry range", projections.ListQuery{Expiry: projections.DateRange{From: "2026-01-01", To: "2026-06-30"}}},
		{"risk", projections.ListQuery{Risks: []string{domain.RiskVeryHigh}}},
		{"age range", projections.ListQuery{AgeMin: ints(30), AgeMax: ints(40)}},
		{"video_call_status", projections.ListQuery{VideoCallStatuses: []string{"ESCALATED"}}},
		{"verification_level", projections.ListQuery{VerificationLevels: []int{3}}},
		{"verification_status", projections.ListQuery{VerificationStatuses: []string{domain.VerificationIdentified}}},
		{"state", projections.ListQuery{States: []string{"suspended"}}},
		{"country", projections.ListQuery{Countries: []string{"FR"}}},
		{"tag", projections.ListQuery{Tags: []string{"vip"}}},
		{"access_role", projections.ListQuery{AccessRoles: []string{"trader"}}},
		{"access_group", projections.ListQuery{AccessGroups: []string{"premium"}}},
		{"agent", projections.ListQuery{Agents: []string{"agent-emea-02"}}},
		{"referral_code", projections.ListQuery{ReferralCodes: []string{"FRIEND10"}}},
		{"scope+status+created", projections.ListQuery{ScopeCompany: "acme", Statuses: []string{"PENDING_REVIEW"},
			Created: projections.TimeRange{From: now.Add(-3 * month)}}},
		{"status+risk by last update", projections.ListQuery{Statuses: []string{"REJECTED"}, Risks: []string{domain.RiskHigh},
			Sort: projections.SortLastStatusUpdate, Desc: true}},
		{"nationality+age+doc type", projections.ListQuery{Nationalities: []string{"DE"}, AgeMin: ints(25), AgeMax: ints(45),
			DocumentTypes: []string{"PASSPORT"}}},
		{"scope+q", projections.ListQuery{ScopeCompany: "initech", Q: "sophie"}},
		{"tag+vstatus by name desc", projections.ListQuery{Tags: []string{"pep"}, VerificationStatuses: []string{domain.VerificationEmailVerified},
			Sort: projections.SortName, Desc: true}},
	}
}

// listLatencies runs each query on its first page and on a deep one (page
// 500 of 20, or the last page when there are fewer), 40 times or for about
// 3 seconds, whichever ends first (at least 5 runs), with nothing else
// running. Every returned row is checked against ListQuery.Matches.
func listLatencies(b *testing.B, ctx context.Context, rm projections.Store, only string, say func(string, ...any)) []listFigure {
	const deepPage, runs, budget = 500, 40, 3 * time.Second
	now := time.Now()
	var out []listFigure
	measure := func(name string, q projections.ListQuery) listFigure {
		f := listFigure{name: name, page: q.Page}
		var ls []time.Duration
		began := time.Now()
		for len(ls) < runs && (len(ls) < 5 || time.Since(began) < budget) {
			t0 := time.Now()
			page, err := rm.ListCustomers(ctx, q)
			ls = append(ls, time.Since(t0))
			if err != nil {
				b.Fatalf("list %s: %v", name, err)
			}
			if len(ls) == 1 {
				f.total = page.Total
				for _, r := range page.Rows {
					if !q.Matches(r) {
						f.mismatched++
					}
				}
			}
		}
		f.runs = len(ls)
		f.p50, f.p95, f.p99 = percentile(ls, .5), percentile(ls, .95), percentile(ls, .99)
		return f
	}
	for _, c := range listCases(now) {
		if !strings.Contains(c.name, only) {
			continue
		}
		q := c.q
		q.Now = now
		q = q.Normalized()
		first := measure(c.name, q)
		q.Page = min(deepPage, max(1, (first.total+q.PerPage-1)/q.PerPage))
		deep := measure(c.name, q)
		say("list %-28s total %8d  p95 first %6s  p95 page %d %6s", c.name, first.total, first.p95.Round(10*time.Microsecond), deep.page, deep.p95.Round(10*time.Microsecond))
		out = append(out, first, deep)
	}
	return out
}

// ---------------------------------------------------------------- (d)

// lagObserver records, while on, for every event a live generation applied,
// the time from its RecordedAt to the end of the commit that applied it.
// It also keeps each batch's size and the time its apply took, which tell a
// projection that is slow per event from one that waits.
type lagObserver struct {
	on      atomic.Bool
	mu      sync.Mutex
	delay   map[string][]time.Duration
	batches map[string][]batchApplied
}

type batchApplied struct {
	events int
	took   time.Duration
}

func (o *lagObserver) Applied(projection string, batch []domain.RecordedEvent, took time.Duration, rebuilding bool) {
	if rebuilding || !o.on.Load() {
		return
	}
	now := time.Now() // the engine calls this right after the commit
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.delay == nil {
		o.delay, o.batches = map[string][]time.Duration{}, map[string][]batchApplied{}
	}
	for _, e := range batch {
		o.delay[projection] = append(o.delay[projection], now.Sub(e.RecordedAt))
	}
	o.batches[projection] = append(o.batches[projection], batchApplied{events: len(batch), took: took})
}

func (o *lagObserver) Lag(string, int64, float64) {}

func (o *lagObserver) Held(string, time.Duration) {}

type lagFigure struct {
	label    string
	writers  int
	commands int64
	events   int64
	elapsed  time.Duration
	byProj   map[string][]time.Duration
	batches  map[string][]batchApplied
	// caughtUp is false when a projection was still behind a minute after
	// the writers stopped: its delays then miss the events not applied.
	caughtUp bool
}

// projectionLag runs 64 writers of ordinary commands through the service
// against existing customers for 10 seconds, with the engine following the
// log live, then waits for the projections to catch up.
// appendStore is an event store the command service can run on.
type appendStore interface {
	domain.EventStore
	domain.IdempotencyIndex
}

// defaultMaxReadLag is kyc serve's default --max-read-lag. The engines of
// the benchmarks hold writers at benchMaxReadLag, this unless
// KYC_BENCH_MAX_READ_LAG names another duration, and (d) runs once with the
// writers held by it and once without.
const defaultMaxReadLag = 50 * time.Millisecond

func benchMaxReadLag(tb testing.TB) time.Duration {
	v := os.Getenv("KYC_BENCH_MAX_READ_LAG")
	if v == "" {
		return defaultMaxReadLag
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		tb.Fatalf("KYC_BENCH_MAX_READ_LAG=%q: want a positive duration such as 20ms", v)
	}
	return d
}

func heldLabel(tb testing.TB) string {
	lag := benchMaxReadLag(tb)
	label := fmt.Sprintf("writers held at --max-read-lag %s", lag)
	if lag == defaultMaxReadLag {
		label += " (the default)"
	}
	return label
}

// lagBothWays measures (d) with the writers unheld, then held back by the
// engine as kyc serve does.
func lagBothWays(b *testing.B, ctx context.Context, store appendStore, rm projections.Store, eng *projections.Engine, obs *lagObserver, ds *benchDataset) []lagFigure {
	return []lagFigure{
		projectionLag(b, ctx, store, rm, nil, eng, obs, ds.ls, ds.codec, ds.say, "writers not held (--max-read-lag 0)"),
		projectionLag(b, ctx, store, rm, eng, eng, obs, ds.ls, ds.codec, ds.say, heldLabel(b)),
	}
}

func projectionLag(b *testing.B, ctx context.Context, store appendStore, rm projections.Store, admission domain.Admission, eng *projections.Engine, obs *lagObserver,
	ls *domain.Lifecycles, codec *domain.Codec, say func(string, ...any), label string) lagFigure {
	const writers, perWriter, duration = 64, 16, 10 * time.Second
	svc, err := domain.NewService(domain.ServiceConfig{Store: store, Idempotency: store, Lifecycles: ls, Codec: codec, Admission: admission})
	if err != nil {
		b.Fatal(err)
	}
	// Customers from pages picked at random: a kept log is used by many
	// runs, and writing to the same customers each time would grow their
	// histories (notes) run after run and make later runs dearer.
	first, err := rm.ListCustomers(ctx, projections.ListQuery{Page: 1, PerPage: 100}.Normalized())
	if err != nil {
		b.Fatal(err)
	}
	pages := max(1, (first.Total+99)/100)
	pick := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var ids []string
	seen := map[string]bool{}
	for tries := 0; len(ids) < writers*perWriter && tries < 4*writers*perWriter/100+8; tries++ {
		page, err := rm.ListCustomers(ctx, projections.ListQuery{Page: 1 + pick.IntN(pages), PerPage: 100}.Normalized())
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range page.Rows {
			if !seen[r.Customer.ID] && len(ids) < writers*perWriter {
				seen[r.Customer.ID] = true
				ids = append(ids, r.Customer.ID)
			}
		}
	}
	if len(ids) < writers {
		b.Fatalf("lag: only %d customers", len(ids))
	}
	caller := domain.Caller{Actor: domain.Actor{Kind: domain.ActorOperator, ID: "bench-operator", Company: "acme"}, Roles: []string{domain.RoleSuperuser}}
	commands := func(r *rand.Rand, i int) domain.Command {
		switch i % 5 {
		case 0:
			return domain.AddNote{Text: "Customer asked for an update on the review."}
		case 1:
			return domain.RecordStepResult{Step: pickOf(r, genSteps), Result: pickOf(r, domain.StepResults), Details: json.RawMessage(`{"score":0.91}`)}
		case 2:
			return domain.AssessRisk{Risk: pickOf(r, []string{domain.RiskNormal, domain.RiskHigh, domain.RiskVeryHigh, ""}), Source: "risk-engine"}
		case 3:
			return domain.SetVideoCallStatus{Status: pickOf(r, domain.VideoCallStatuses)}
		default:
			t := pickOf(r, genTags)
			if r.IntN(2) == 0 {
				return domain.ChangeTags{Add: []string{t}}
			}
			return domain.ChangeTags{Remove: []string{t}}
		}
	}
	obs.mu.Lock()
	obs.delay, obs.batches = nil, nil
	obs.mu.Unlock()
	obs.on.Store(true)
	var (
		wg               sync.WaitGroup
		nCommands, nEvts atomic.Int64
		errOnce          sync.Once
		firstErr         error
	)
	start := time.Now()
	deadline := start.Add(duration)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 99))
			for i := 0; time.Now().Before(deadline); i++ {
				id := ids[(w+writers*(i%perWriter))%len(ids)]
				res, err := svc.Execute(ctx, id, commands(r, i), domain.Options{Caller: caller})
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("writer %d: %w", w, err) })
					return
				}
				nCommands.Add(1)
				nEvts.Add(int64(len(res.Events)))
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	// Let the projections apply the last events before reading the figures;
	// a projection that has not caught up after a minute shows fewer events
	// than were appended.
	caughtUp := false
	for wait := time.Now(); !caughtUp && time.Since(wait) < time.Minute; time.Sleep(20 * time.Millisecond) {
		sts, err := eng.Status(ctx)
		if err != nil {
			b.Fatal(err)
		}
		caughtUp = !slices.ContainsFunc(sts, func(s projections.Status) bool { return s.LagEvents > 0 })
	}
	obs.on.Store(false)
	obs.mu.Lock()
	defer obs.mu.Unlock()
	f := lagFigure{label: label, writers: writers, commands: nCommands.Load(), events: nEvts.Load(), elapsed: elapsed,
		byProj: map[string][]time.Duration{}, batches: map[string][]batchApplied{}, caughtUp: caughtUp}
	for k, v := range obs.delay {
		f.byProj[k] = slices.Clone(v)
	}
	for k, v := range obs.batches {
		f.batches[k] = slices.Clone(v)
	}
	say("lag, %s: %d writers appended %d events (%d commands) in %s", label, writers, f.events, f.commands, elapsed.Round(time.Millisecond))
	return f
}

// ---------------------------------------------------------------- report

func report(b *testing.B, n int, m marker, base []baselineFigure, rebuilds []rebuildFigure, lists []listFigure, lags []lagFigure, targetLag time.Duration) {
	var out strings.Builder
	fmt.Fprintf(&out, "\nread models at %d customers, %d events\n\n", n, m.Events)
	w := tabwriter.NewWriter(&out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "write\tevents/s\tseconds\tratio to (a)\ttarget\t")
	baseFor := map[string]baselineFigure{projections.CustomersProjection: base[0], projections.AuditProjection: base[1]}
	for i, f := range base {
		if i > 0 && f == base[i-1] {
			continue // one baseline for both projections (PostgreSQL's COPY)
		}
		fmt.Fprintf(w, "%s\t%.0f\t%.1f\t1.00\t\t\n", f.name, f.rate(), f.elapsed.Seconds())
	}
	for _, f := range rebuilds {
		verdict := "met"
		if f.rate() < targetRebuild {
			verdict = "MISSED"
		}
		fmt.Fprintf(w, "(b) rebuild %s\t%.0f\t%.1f\t%.2f\t>= %d %s\t\n", f.name, f.rate(), f.elapsed.Seconds(), f.rate()/baseFor[f.name].rate(), targetRebuild, verdict)
	}
	w.Flush()

	over, worst := reportLists(&out, lists)

	lagP99 := reportLag(&out, lags, targetLag)
	// The tables go to stdout: testing keeps only the first lines of a
	// benchmark's log, so b.Log gets the headline figures alone.
	fmt.Print(out.String() + "\n")
	var rates []string
	for _, f := range rebuilds {
		rates = append(rates, fmt.Sprintf("%s %.0f events/s (%.2f of (a), target %d)", f.name, f.rate(), f.rate()/baseFor[f.name].rate(), targetRebuild))
	}
	b.Logf("%d customers, %d events; (a) raw insert: customers %.0f events/s, audit %.0f events/s", n, m.Events, base[0].rate(), base[1].rate())
	b.Logf("(b) rebuild: %s", strings.Join(rates, "; "))
	b.Logf("(c) list: worst p95 %s, %d of %d over %s", ms(worst), over, len(lists), targetListP95)
	logLag(b, lags, lagP99, targetLag)

	for _, f := range rebuilds {
		b.ReportMetric(f.rate(), "rebuild-"+f.name+"-events/s")
		b.ReportMetric(f.rate()/baseFor[f.name].rate(), "rebuild-"+f.name+"-ratio")
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "list-worst-p95-ms")
	b.ReportMetric(float64(over), "list-over-target")
}

// printLag prints the (d) tables of lags under heading, then logs and
// reports their p99s: the output of a benchmark that runs (d) alone.
func printLag(b *testing.B, heading string, lags []lagFigure, target time.Duration) {
	var out strings.Builder
	if heading != "" {
		out.WriteString("\n" + heading)
	}
	p99 := reportLag(&out, lags, target)
	fmt.Print(out.String() + "\n")
	logLag(b, lags, p99, target)
}

// logLag logs each projection's p99 in the last of lags and reports them
// as metrics.
func logLag(b *testing.B, lags []lagFigure, p99 map[string]time.Duration, target time.Duration) {
	b.Logf("(d) lag p99, %s: customers %s, audit %s (target %s)", lags[len(lags)-1].label,
		ms(p99[projections.CustomersProjection]), ms(p99[projections.AuditProjection]), target)
	for name, d := range p99 {
		b.ReportMetric(float64(d.Microseconds())/1000, "lag-"+name+"-p99-ms")
	}
}

// reportLists writes the table of (c) and returns how many queries are
// over the target and the worst p95.
func reportLists(out *strings.Builder, lists []listFigure) (over int, worst time.Duration) {
	fmt.Fprintf(out, "\n(c) list latency (target p95 <= %s; deep = page 500 of 20 or the last page)\n\n", targetListP95)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "query\tpage\ttotal\truns\tp50\tp95\tp99\t\t")
	for _, f := range lists {
		flag := ""
		if f.p95 > targetListP95 {
			flag = "OVER"
			over++
		}
		if f.mismatched > 0 {
			flag += fmt.Sprintf(" %d rows do not match!", f.mismatched)
		}
		worst = max(worst, f.p95)
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", f.name, f.page, f.total, f.runs, ms(f.p50), ms(f.p95), ms(f.p99), flag)
	}
	w.Flush()
	fmt.Fprintf(out, "%d of %d list queries over target\n", over, len(lists))
	return over, worst
}

// reportLag writes the (d) tables and returns each projection's p99 in the
// last run. Batch sizes and apply times come with the delays: a delay far
// above the apply time is time spent waiting for the CPU or for the batch.
func reportLag(out *strings.Builder, lags []lagFigure, targetLag time.Duration) map[string]time.Duration {
	lagP99 := map[string]time.Duration{}
	for i, lag := range lags {
		fmt.Fprintf(out, "\n(d) projection lag, %s, %d writers through the service for %s: %d events (%.0f events/s); target p99 <= %s\n\n",
			lag.label, lag.writers, lag.elapsed.Round(time.Second), lag.events, float64(lag.events)/lag.elapsed.Seconds(), targetLag)
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(w, "projection\tevents\tp50\tp99\tmax\t\tbatches\tevents/batch p50\tapply p50\tapply p99\t")
		for _, name := range []string{projections.CustomersProjection, projections.AuditProjection} {
			ds := lag.byProj[name]
			p50, p99 := percentile(ds, .5), percentile(ds, .99)
			if i == len(lags)-1 {
				lagP99[name] = p99
			}
			verdict := "met"
			if p99 > targetLag {
				verdict = "MISSED"
			}
			bs := lag.batches[name]
			sizes, took := make([]int, len(bs)), make([]time.Duration, len(bs))
			for j, b := range bs {
				sizes[j], took[j] = b.events, b.took
			}
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t\n", name, len(ds), ms(p50), ms(p99), ms(percentile(ds, 1)), verdict,
				len(bs), percentile(sizes, .5), ms(percentile(took, .5)), ms(percentile(took, .99)))
		}
		w.Flush()
		if !lag.caughtUp {
			fmt.Fprintln(out, "a projection had not caught up a minute after the writers stopped: its figures miss the events it had not applied")
		}
	}
	return lagP99
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }
