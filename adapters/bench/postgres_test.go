package bench

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/kycengine/kyc/adapters/eventstore/postgres"
	"github.com/kycengine/kyc/adapters/pgtest"
	"github.com/kycengine/kyc/domain"
)

// Targets the PostgreSQL event store is held to.
const (
	targetPostgres64      = 20_000 // events/s with 64 concurrent writers
	targetPostgresVisible = 50 * time.Millisecond
)

// storeCommitters is how many transactions the store keeps in flight, its
// committers (defaultCommitters in adapters/eventstore/postgres, which it
// does not export), so that (a2) writes with as many connections.
const storeCommitters = 2

// BenchmarkPostgresEvents measures the PostgreSQL event store's append path
// on a durable server (fsync and synchronous commit on) started for the run,
// against baselines taken on the same server in the same run:
//
//	(a) raw COPY: rows of the events table's shape copied into it in
//	    transactions of 100, none of the store's work;
//	(a2) the same rows inserted, none of the store's work either, in the
//	    shape the store's transactions had under 64 writers in (b): as many
//	    connections as it has committers, each committing as many rows at a
//	    time as its transactions carried;
//	(b) Append with 1 and with 64 concurrent writers, each appending one
//	    event at a time to its own customer stream at the revision it
//	    expects, as commands do;
//	(c) (b) with 64 writers while a subscription of the same store follows
//	    the log, and how long each event takes from the start of its Append
//	    to that subscription.
//
// Each scenario also shows the processor time it took per event in this
// process (writers, store, pgx) and in the server.
func BenchmarkPostgresEvents(b *testing.B) {
	srv := durablePostgres(b)
	ctx := context.Background()
	base := copyBaseline(b, ctx, srv)
	one, _, _ := postgresAppends(b, ctx, srv, 1, false)
	many, _, perTx := postgresAppends(b, ctx, srv, 64, false)
	bare := insertBaseline(b, ctx, srv, storeCommitters, max(1, int(math.Round(perTx))))
	followed, visible, _ := postgresAppends(b, ctx, srv, 64, true)

	var out strings.Builder
	w := tabwriter.NewWriter(&out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "scenario\tevents/s\tp50\tp99\tratio to (a)\tGo µs/event\tserver µs/event\t")
	for _, f := range []figure{base, bare, one, many, followed} {
		fmt.Fprintf(w, "%s\t%.0f\t%s\t%s\t%.2f\t%s\t%s\t\n", f.name, f.rate(), f.p50.Round(time.Microsecond), f.p99.Round(time.Microsecond),
			f.rate()/base.rate(), f.cpuPerEvent(f.ownCPU), f.cpuPerEvent(f.serverCPU))
	}
	fmt.Fprintf(w, "%s\t\t%s\t%s\t\t\t\t\n", visible.name, visible.p50.Round(time.Microsecond), visible.p99.Round(time.Microsecond))
	w.Flush()
	fmt.Print("\n" + out.String())
	fmt.Printf("64 writers make %.2f of (a2), the same rows written bare in transactions of the same shape\n", many.rate()/bare.rate())
	fmt.Printf("targets: 64 writers >= %d events/s; append-to-visible p99 <= %s\n\n", targetPostgres64, targetPostgresVisible)
	b.Logf("postgres events: COPY %.0f/s; bare insert as the store's transactions %.0f/s; 1 writer %.0f/s (%.2f of COPY); "+
		"64 writers %.0f/s (%.2f of COPY, %.2f of the bare insert, target %d/s); "+
		"64 writers with a subscription %.0f/s, append-to-visible p99 %s (target %s)",
		base.rate(), bare.rate(), one.rate(), one.rate()/base.rate(), many.rate(), many.rate()/base.rate(), many.rate()/bare.rate(),
		targetPostgres64, followed.rate(), visible.p99.Round(time.Microsecond), targetPostgresVisible)

	b.ReportMetric(base.rate(), "copy-events/s")
	b.ReportMetric(one.rate(), "writers1-events/s")
	b.ReportMetric(one.rate()/base.rate(), "writers1-ratio")
	b.ReportMetric(many.rate(), "writers64-events/s")
	b.ReportMetric(many.rate()/base.rate(), "writers64-ratio")
	b.ReportMetric(many.rate()/bare.rate(), "writers64-of-insert")
	b.ReportMetric(float64(visible.p99.Microseconds())/1000, "visible-p99-ms")
}

func pgEvent(i int) domain.EventData {
	return domain.EventData{
		ID:            uuid.Must(uuid.NewV7()),
		Type:          "StatusChanged",
		SchemaVersion: 1,
		OccurredAt:    time.Now(),
		Actor:         domain.Actor{Kind: domain.ActorOperator, ID: "alice", Company: "acme"},
		CorrelationID: uuid.NewString(),
		CausationID:   fmt.Sprintf("cmd-%d", i),
		Data:          sampleData,
	}
}

// The columns of kyc_events the baselines write, in the order of
// baselineEvent.row and insertRowsSQL.
var eventColumns = []string{"id", "stream", "revision", "type", "schema_version", "occurred_at", "recorded_at",
	"actor_kind", "actor_id", "actor_company", "correlation_id", "causation_id", "idempotency_key",
	"data", "personal", "prev_hash", "hash"}

// baselineEvent is an event row of the baselines; what every event shares
// (type, actor, data) is filled in by row and insertRows.
type baselineEvent struct {
	id                                 [16]byte
	stream                             string
	revision, at                       int64
	correlation, causation, prev, hash string
}

// baselineEvents fills events with the next ones of 64 streams named prefix
// and a number, chained after prev from counter rev on, and returns the
// counter and the hash after them.
func baselineEvents(events []baselineEvent, prefix string, rev int, prev string) (int, string) {
	for i := range events {
		hash := fmt.Sprintf("%064d", rev)
		events[i] = baselineEvent{id: uuid.Must(uuid.NewV7()), stream: fmt.Sprintf("%s%d", prefix, rev%64), revision: int64(rev / 64),
			at: time.Now().UnixNano(), correlation: uuid.NewString(), causation: fmt.Sprintf("cmd-%d", rev), prev: prev, hash: hash}
		prev = hash
		rev++
	}
	return rev, prev
}

func (e baselineEvent) row() []any {
	return []any{e.id, e.stream, e.revision, "StatusChanged", int64(1), e.at, e.at, "operator", "alice", "acme",
		e.correlation, e.causation, nil, sampleData, nil, e.prev, e.hash}
}

// copyBaseline copies event rows into the store's own table (made by its
// migration, so both write the same shape and indexes) in durable
// transactions of 100 rows, from one connection.
func copyBaseline(b *testing.B, ctx context.Context, srv *pgtest.Server) figure {
	url, err := srv.CreateDatabase(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := postgres.Migrate(ctx, url); err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	const batch = 100
	events := make([]baselineEvent, batch)
	rows := make([][]any, batch)
	var latencies []time.Duration
	meter := cpuMeter{server: srv}
	cpu := meter.read()
	start := time.Now()
	prev := ""
	for rev := 0; time.Since(start) < scenarioDuration; {
		rev, prev = baselineEvents(events, "customer-", rev, prev)
		for i, e := range events {
			rows[i] = e.row()
		}
		t0 := time.Now()
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"kyc_events"}, eventColumns, pgx.CopyFromRows(rows)); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		for range batch {
			latencies = append(latencies, d)
		}
	}
	f := figure{name: "(a) raw COPY, batches of 100, synced", events: len(latencies), elapsed: time.Since(start),
		p50: percentile(latencies, .5), p99: percentile(latencies, .99)}
	meter.since(cpu, &f)
	return f
}

// insertRowsSQL writes rows given as one array per column, as the store's
// append statement does, and nothing else.
const insertRowsSQL = `INSERT INTO kyc_events (id, stream, revision, type, schema_version, occurred_at, recorded_at,
		actor_kind, actor_id, actor_company, correlation_id, causation_id, idempotency_key, data, personal, prev_hash, hash)
	SELECT id, stream, revision, 'StatusChanged', 1, at, at, 'operator', 'alice', 'acme', corr, cause, NULL, $8::bytea, NULL, prev, hash
	  FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $9::text[])
		AS r(id, stream, revision, at, corr, cause, prev, hash)`

// insertRows writes events in one durable transaction with insertRowsSQL.
func insertRows(ctx context.Context, conn *pgx.Conn, events []baselineEvent) error {
	n := len(events)
	ids, revisions, at := make([][16]byte, n), make([]int64, n), make([]int64, n)
	streams, corrs, causes, prevs, hashes := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, e := range events {
		ids[i], streams[i], revisions[i], at[i] = e.id, e.stream, e.revision, e.at
		corrs[i], causes[i], prevs[i], hashes[i] = e.correlation, e.causation, e.prev, e.hash
	}
	_, err := conn.Exec(ctx, insertRowsSQL, ids, streams, revisions, at, corrs, causes, prevs, sampleData, hashes)
	return err
}

// insertBaseline writes the rows of events, no more, in the shape the
// store's committers gave its transactions under load: conns connections,
// each committing perTx rows at a time with one statement. Against it, the
// store's rate is the share its own work (stream heads, hashes, batching,
// notifications, results) leaves of writing the same rows the same way.
func insertBaseline(b *testing.B, ctx context.Context, srv *pgtest.Server, conns, perTx int) figure {
	url, err := srv.CreateDatabase(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := postgres.Migrate(ctx, url); err != nil {
		b.Fatal(err)
	}
	opened := make([]*pgx.Conn, conns)
	for k := range opened {
		if opened[k], err = pgx.Connect(ctx, url); err != nil {
			b.Fatal(err)
		}
		defer opened[k].Close(ctx)
	}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		wg        sync.WaitGroup
		errs      = make(chan error, conns)
	)
	meter := cpuMeter{server: srv}
	cpu := meter.read()
	start := time.Now()
	for k, conn := range opened {
		wg.Go(func() {
			events := make([]baselineEvent, perTx)
			own := make([]time.Duration, 0, 4096)
			prev := ""
			for rev := 0; time.Since(start) < scenarioDuration; {
				rev, prev = baselineEvents(events, fmt.Sprintf("customer-%d-", k), rev, prev)
				t0 := time.Now()
				if err := insertRows(ctx, conn, events); err != nil {
					errs <- err
					return
				}
				d := time.Since(t0)
				for range perTx {
					own = append(own, d)
				}
			}
			mu.Lock()
			latencies = append(latencies, own...)
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	f := figure{name: fmt.Sprintf("(a2) raw INSERT, %d connections, %d rows a transaction", conns, perTx), events: len(latencies),
		elapsed: time.Since(start), p50: percentile(latencies, .5), p99: percentile(latencies, .99)}
	meter.since(cpu, &f)
	return f
}

// batchCounter tells how many appends the store's transactions carried.
type batchCounter struct{ requests, batches atomic.Int64 }

func (c *batchCounter) BatchCommitted(requests, _ int, _ time.Duration) {
	c.requests.Add(int64(requests))
	c.batches.Add(1)
}

// postgresAppends runs writers that each append one event at a time to
// their own stream on a database of their own. With follow, a subscription
// follows the log meanwhile, and the second figure is how long each event
// took from the start of its Append to the subscription.
func postgresAppends(b *testing.B, ctx context.Context, srv *pgtest.Server, writers int, follow bool) (figure, figure, float64) {
	url, err := srv.CreateDatabase(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var batches batchCounter
	store, err := postgres.Open(ctx, url, postgres.WithObserver(&batches))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	streams := make([]string, writers)
	revs := make([]uint64, writers)
	for w := range streams {
		streams[w] = "customer-" + uuid.NewString()
		if _, err := store.Append(ctx, streams[w], domain.ExpectNoStream, []domain.EventData{pgEvent(0)}); err != nil {
			b.Fatal(err)
		}
	}
	tail, err := store.ReadAll(ctx, domain.Start, 0)
	if err != nil {
		b.Fatal(err)
	}
	batches.requests.Store(0)
	batches.batches.Store(0)

	// started holds each event's start time until the subscription sees it.
	var (
		started  sync.Map
		mu       sync.Mutex
		visible  []time.Duration
		received atomic.Int64
	)
	subCtx, stopSub := context.WithCancel(ctx)
	defer stopSub()
	subDone := make(chan error, 1)
	if follow {
		go func() {
			subDone <- store.SubscribeAll(subCtx, tail[len(tail)-1].Position, func(_ context.Context, e domain.RecordedEvent) error {
				now := time.Now()
				if t0, ok := started.LoadAndDelete(e.ID); ok {
					mu.Lock()
					visible = append(visible, now.Sub(t0.(time.Time)))
					mu.Unlock()
				}
				received.Add(1)
				return nil
			})
		}()
	} else {
		close(subDone)
	}
	name := fmt.Sprintf("(b) Append, %d writer(s)", writers)
	if follow {
		name = fmt.Sprintf("(c) Append, %d writer(s), 1 subscription", writers)
	}
	meter := cpuMeter{server: srv}
	cpu := meter.read()
	f, err := load(name, writers, func(w, i int) error {
		e := pgEvent(i + 1)
		if follow {
			started.Store(e.ID, time.Now())
		}
		_, err := store.Append(ctx, streams[w], domain.ExpectRevision(revs[w]), []domain.EventData{e})
		revs[w]++
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	meter.since(cpu, &f)
	if follow {
		deadline := time.Now().Add(30 * time.Second)
		for received.Load() < int64(f.events) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := received.Load(); n < int64(f.events) {
			b.Errorf("the subscription saw %d of %d events", n, f.events)
		}
	}
	stopSub()
	<-subDone
	var perTx float64
	if n := batches.batches.Load(); n > 0 {
		perTx = float64(batches.requests.Load()) / float64(n)
		b.Logf("%s: %d appends in %d transactions, %.1f per transaction", name, batches.requests.Load(), n, perTx)
	}
	mu.Lock()
	defer mu.Unlock()
	return f, figure{name: "(c) append-to-visible, 64 writers", events: len(visible), p50: percentile(visible, .5), p99: percentile(visible, .99)}, perTx
}
