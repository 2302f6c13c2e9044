package bench

import (
	"context"
	"fmt"
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

// BenchmarkPostgresEvents measures the PostgreSQL event store's append path
// on a durable server (fsync and synchronous commit on) started for the run,
// against a baseline taken on the same server in the same run:
//
//	(a) raw COPY: rows of the events table's shape copied into it in
//	    transactions of 100, none of the store's work;
//	(b) Append with 1 and with 64 concurrent writers, each appending one
//	    event at a time to its own customer stream at the revision it
//	    expects, as commands do;
//	(c) (b) with 64 writers while a subscription of the same store follows
//	    the log, and how long each event takes from the start of its Append
//	    to that subscription.
func BenchmarkPostgresEvents(b *testing.B) {
	srv := durablePostgres(b)
	ctx := context.Background()
	base := copyBaseline(b, ctx, srv)
	one, _ := postgresAppends(b, ctx, srv, 1, false)
	many, _ := postgresAppends(b, ctx, srv, 64, false)
	followed, visible := postgresAppends(b, ctx, srv, 64, true)

	var out strings.Builder
	w := tabwriter.NewWriter(&out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "scenario\tevents/s\tp50\tp99\tratio to (a)\t")
	for _, f := range []figure{base, one, many, followed} {
		fmt.Fprintf(w, "%s\t%.0f\t%s\t%s\t%.2f\t\n", f.name, f.rate(), f.p50.Round(time.Microsecond), f.p99.Round(time.Microsecond), f.rate()/base.rate())
	}
	fmt.Fprintf(w, "%s\t\t%s\t%s\t\t\n", visible.name, visible.p50.Round(time.Microsecond), visible.p99.Round(time.Microsecond))
	w.Flush()
	fmt.Print("\n" + out.String())
	fmt.Printf("targets: 64 writers >= %d events/s; append-to-visible p99 <= %s\n\n", targetPostgres64, targetPostgresVisible)
	b.Logf("postgres events: COPY %.0f/s; 1 writer %.0f/s (%.2f of COPY); 64 writers %.0f/s (%.2f of COPY, target %d/s); "+
		"64 writers with a subscription %.0f/s, append-to-visible p99 %s (target %s)",
		base.rate(), one.rate(), one.rate()/base.rate(), many.rate(), many.rate()/base.rate(), targetPostgres64,
		followed.rate(), visible.p99.Round(time.Microsecond), targetPostgresVisible)

	b.ReportMetric(base.rate(), "copy-events/s")
	b.ReportMetric(one.rate(), "writers1-events/s")
	b.ReportMetric(one.rate()/base.rate(), "writers1-ratio")
	b.ReportMetric(many.rate(), "writers64-events/s")
	b.ReportMetric(many.rate()/base.rate(), "writers64-ratio")
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
	columns := []string{"id", "stream", "revision", "type", "schema_version", "occurred_at", "recorded_at",
		"actor_kind", "actor_id", "actor_company", "correlation_id", "causation_id", "idempotency_key",
		"data", "personal", "prev_hash", "hash"}
	const batch = 100
	rows := make([][]any, batch)
	var latencies []time.Duration
	events := 0
	prev := ""
	start := time.Now()
	for rev := 0; time.Since(start) < scenarioDuration; {
		for i := range rows {
			now := time.Now().UnixNano()
			hash := fmt.Sprintf("%064d", rev)
			rows[i] = []any{[16]byte(uuid.Must(uuid.NewV7())), fmt.Sprintf("customer-%d", rev%64), int64(rev / 64), "StatusChanged", int64(1),
				now, now, "operator", "alice", "acme", uuid.NewString(), fmt.Sprintf("cmd-%d", rev), nil, sampleData, nil, prev, hash}
			prev = hash
			rev++
		}
		t0 := time.Now()
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"kyc_events"}, columns, pgx.CopyFromRows(rows)); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		for range batch {
			latencies = append(latencies, d)
		}
		events += batch
	}
	return figure{name: "(a) raw COPY, batches of 100, synced", events: events, elapsed: time.Since(start),
		p50: percentile(latencies, .5), p99: percentile(latencies, .99)}
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
func postgresAppends(b *testing.B, ctx context.Context, srv *pgtest.Server, writers int, follow bool) (figure, figure) {
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
	if n := batches.batches.Load(); n > 0 {
		b.Logf("%s: %d appends in %d transactions, %.1f per transaction", name, batches.requests.Load(), n, float64(batches.requests.Load())/float64(n))
	}
	mu.Lock()
	defer mu.Unlock()
	return f, figure{name: "(c) append-to-visible, 64 writers", events: len(visible), p50: percentile(visible, .5), p99: percentile(visible, .99)}
}
