package bench

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kycengine/kyc/adapters/demo"
	pgevents "github.com/kycengine/kyc/adapters/eventstore/postgres"
	"github.com/kycengine/kyc/adapters/pgtest"
	pgread "github.com/kycengine/kyc/adapters/readmodel/postgres"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// targetPostgresProjectionVisible bounds append-to-visible in a projection
// on PostgreSQL (issue: PostgreSQL deployment).
const targetPostgresProjectionVisible = 50 * time.Millisecond

// BenchmarkPostgresReadModels is BenchmarkReadModels with the read models in
// PostgreSQL (a durable server started for the run), against a baseline taken
// on the same server in the same run:
//
//	(a) raw COPY of event rows into PostgreSQL (what the server takes with
//	    none of the engine's work);
//	(b) the rebuild rate of each projection from the generated log into
//	    PostgreSQL;
//	(c) list latency for every filter and the combinations, first and deep
//	    page, total included;
//	(d) append-to-visible in each projection while 64 writers run commands
//	    through the service, with events and read models both in PostgreSQL.
//
// It shares KYC_BENCH_CUSTOMERS and KYC_BENCH_DATA with BenchmarkReadModels.
func BenchmarkPostgresReadModels(b *testing.B) {
	ds := openBenchDataset(b)
	srv := durablePostgres(b)
	ctx := context.Background()
	cp := copyBaseline(b, ctx, srv)
	base := []baselineFigure{
		{name: "(a) raw COPY into PostgreSQL", rows: int64(cp.events), events: int64(cp.events), elapsed: cp.elapsed},
		{name: "(a) raw COPY into PostgreSQL", rows: int64(cp.events), events: int64(cp.events), elapsed: cp.elapsed},
	}
	ds.say("(a) raw COPY: %.0f rows/s", cp.rate())

	readURL, err := srv.CreateDatabase(ctx)
	if err != nil {
		b.Fatal(err)
	}
	rm, err := pgread.Open(ctx, readURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rm.Close() })
	eng := rebuildEngine(b, ctx, ds, ds.store, rm, nil)
	var rebuilds []rebuildFigure
	for _, name := range []string{projections.CustomersProjection, projections.AuditProjection} {
		rebuilds = append(rebuilds, rebuild(b, ctx, eng, name, ds.say))
	}
	lists := listLatencies(b, ctx, rm, "", ds.say)

	lag := postgresLiveLag(b, ctx, srv, ds)

	report(b, ds.n, ds.m, base, rebuilds, lists, lag, targetPostgresProjectionVisible)
}

// postgresLiveLag measures (d): a new database gets a few thousand customers
// through the service, with both projections following the log live in it,
// then 64 writers run commands, unheld and held.
func postgresLiveLag(b *testing.B, ctx context.Context, srv *pgtest.Server, ds *benchDataset) []lagFigure {
	url, err := srv.CreateDatabase(ctx)
	if err != nil {
		b.Fatal(err)
	}
	events, err := pgevents.Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { events.Close() })
	live, err := pgread.Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { live.Close() })
	customers, err := projections.NewCustomers(live, ds.codec, ds.ls)
	if err != nil {
		b.Fatal(err)
	}
	audit, err := projections.NewAudit(live, ds.codec)
	if err != nil {
		b.Fatal(err)
	}
	obs := &lagObserver{}
	liveEng, err := projections.NewEngine(projections.EngineConfig{Events: events, Store: live,
		Projections: []projections.Projection{customers, audit}, Observer: obs, MaxLag: benchMaxReadLag(b)})
	if err != nil {
		b.Fatal(err)
	}
	engCtx, stop := context.WithCancel(ctx)
	b.Cleanup(func() { stop(); liveEng.Wait() })
	if err := liveEng.Start(engCtx); err != nil {
		b.Fatal(err)
	}
	svc, err := domain.NewService(domain.ServiceConfig{Store: events, Idempotency: events, Lifecycles: ds.ls, Codec: ds.codec})
	if err != nil {
		b.Fatal(err)
	}
	if err := demo.Seed(ctx, svc, 2000, 16, 7, nil); err != nil {
		b.Fatal(err)
	}
	return lagBothWays(b, ctx, events, live, liveEng, obs, ds)

}

// BenchmarkPostgresProjectionLag is (d) of BenchmarkPostgresReadModels
// alone: it needs no generated log, so it runs in about half a minute, for
// work on the live path.
func BenchmarkPostgresProjectionLag(b *testing.B) {
	srv := durablePostgres(b)
	codec, ls := benchDomain(b)
	say := func(format string, args ...any) { fmt.Printf("lag: "+format+"\n", args...) }
	lags := postgresLiveLag(b, context.Background(), srv, &benchDataset{codec: codec, ls: ls, say: say})
	printLag(b, "", lags, targetPostgresProjectionVisible)
}

// durablePostgres starts a server with fsync and synchronous commit on for
// the benchmark and stops it at its end.
func durablePostgres(b *testing.B) *pgtest.Server {
	srv, err := pgtest.Start(pgtest.Options{Durable: true})
	if err != nil {
		pgtest.Unavailable(b, err)
	}
	b.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			b.Error(err)
		}
	})
	return srv
}

// BenchmarkPostgresReadModelsLists runs (c) of BenchmarkPostgresReadModels
// alone, on the PostgreSQL read models KYC_BENCH_READ names (a database a
// `kyc projections rebuild customers --read postgres://...` filled, for
// example from the log KYC_BENCH_DATA keeps), so that a change to the list
// queries or indexes is measured in a minute instead of a full run.
// KYC_BENCH_LIST, when set, keeps the queries whose name contains it.
func BenchmarkPostgresReadModelsLists(b *testing.B) {
	url := os.Getenv("KYC_BENCH_READ")
	if url == "" {
		b.Skip("this benchmark measures kept PostgreSQL read models: set KYC_BENCH_READ=postgres://... (BenchmarkPostgresReadModels builds its own)")
	}
	ctx := context.Background()
	rm, err := pgread.Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rm.Close() })
	all, err := rm.ListCustomers(ctx, projections.ListQuery{Page: 1, PerPage: 1})
	if err != nil {
		b.Fatal(err)
	}
	lists := listLatencies(b, ctx, rm, os.Getenv("KYC_BENCH_LIST"), func(format string, args ...any) { b.Logf(format, args...) })
	printLists(b, fmt.Sprintf("PostgreSQL read models at %d customers", all.Total), lists)
}
