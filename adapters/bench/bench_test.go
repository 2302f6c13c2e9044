// Package bench measures the write path of the engine against a raw SQLite
// baseline taken in the same run, on the same disk, so the figures survive a
// noisy shared machine as ratios. Run it with `make bench`.
package bench

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	_ "modernc.org/sqlite"

	"github.com/kycengine/kyc/adapters/eventstore/embedded"
	"github.com/kycengine/kyc/adapters/httpapi"
	"github.com/kycengine/kyc/adapters/metrics"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/schemas"
)

// Each scenario runs for this long; long enough for thousands of group commits.
const scenarioDuration = 4 * time.Second

type figure struct {
	name     string
	events   int
	elapsed  time.Duration
	p50, p99 time.Duration
	// Processor time the scenario took in this process and in its server,
	// when they could be read (see cpuMeter).
	ownCPU, serverCPU time.Duration
}

func (f figure) rate() float64 { return float64(f.events) / f.elapsed.Seconds() }

// cpuPerEvent formats d spread over the figure's events, in microseconds.
func (f figure) cpuPerEvent(d time.Duration) string {
	if d <= 0 || f.events == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f", float64(d.Nanoseconds())/1e3/float64(f.events))
}

// cpuMeter reads the processor time of this process and of a server whose
// time can be read, so that a scenario's cost per event shows on which side
// it went.
type cpuMeter struct {
	server interface{ CPU() (time.Duration, error) }
}

type cpuReading struct{ own, server time.Duration }

func (m cpuMeter) read() cpuReading {
	r := cpuReading{own: ownCPU()}
	if m.server != nil {
		r.server, _ = m.server.CPU()
	}
	return r
}

// since records the processor time spent from start until now in f.
func (m cpuMeter) since(start cpuReading, f *figure) {
	now := m.read()
	if now.own > 0 && start.own > 0 {
		f.ownCPU = now.own - start.own
	}
	if now.server > 0 && start.server > 0 {
		f.serverCPU = now.server - start.server
	}
}

func percentile[T cmp.Ordered](ls []T, p float64) T {
	if len(ls) == 0 {
		var zero T
		return zero
	}
	slices.Sort(ls)
	return ls[min(len(ls)-1, int(float64(len(ls))*p))]
}

// A realistic event payload: a StatusChanged with a reason and labels.
var sampleData = []byte(`{"from":"PENDING_REVIEW","to":"REJECTED","transition":"reject","reason":"document appears to be tampered with","labels":["FORGERY"],"reject_type":"RETRY"}`)

// baseline inserts event rows of the engine's shape straight into SQLite in
// synced transactions of 100 rows: the fastest the disk and driver allow for
// this table, with none of the engine's work.
func baseline(b *testing.B, dir string) figure {
	path := filepath.Join(dir, "baseline.db")
	// The engine's own migration makes the table, so both write the same shape.
	store, err := embedded.Open(context.Background(), path)
	if err != nil {
		b.Fatal(err)
	}
	store.Close()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	var latencies []time.Duration
	events := 0
	start := time.Now()
	prev := ""
	for rev := 0; time.Since(start) < scenarioDuration; {
		t0 := time.Now()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		st, err := tx.PrepareContext(ctx, `INSERT INTO events (id, stream, revision, type, schema_version, occurred_at, recorded_at,
			actor_kind, actor_id, actor_company, correlation_id, causation_id, idempotency_key, data, personal, prev_hash, hash)
			VALUES (?, ?, ?, ?, 1, ?, ?, 'operator', 'alice', 'acme', ?, ?, NULL, ?, NULL, ?, ?)`)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			now := time.Now().UnixNano()
			id := uuid.Must(uuid.NewV7()).String()
			stream := fmt.Sprintf("customer-%d", rev%64)
			hash := fmt.Sprintf("%064d", rev)
			if _, err := st.ExecContext(ctx, id, stream, rev/64, "StatusChanged", now, now, id, id, sampleData, prev, hash); err != nil {
				b.Fatal(err)
			}
			prev = hash
			rev++
		}
		st.Close()
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		for i := 0; i < 100; i++ {
			latencies = append(latencies, d)
		}
		events += 100
	}
	return figure{name: "(a) raw SQLite, batches of 100, synced", events: events, elapsed: time.Since(start), p50: percentile(latencies, .5), p99: percentile(latencies, .99)}
}

type engine struct {
	store *embedded.Store
	svc   *domain.Service
	m     *metrics.Metrics
}

func newEngine(b *testing.B, dir, name string) *engine {
	m := metrics.New()
	store, err := embedded.Open(context.Background(), filepath.Join(dir, name+".db"), embedded.WithObserver(m))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	ls, err := domain.LoadLifecycles(schemas.Lifecycles(), "kyc-review")
	if err != nil {
		b.Fatal(err)
	}
	svc, err := domain.NewService(domain.ServiceConfig{Store: store, Idempotency: store, Lifecycles: ls, Codec: domain.NewCodec(), Observer: m})
	if err != nil {
		b.Fatal(err)
	}
	return &engine{store: store, svc: svc, m: m}
}

var operator = domain.Caller{Actor: domain.Actor{Kind: domain.ActorOperator, ID: "alice", Company: "acme"}, Roles: []string{"operator"}}

func (e *engine) customers(b *testing.B, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		res, err := e.svc.Register(context.Background(), domain.RegisterCustomer{
			Name: &domain.Name{First: "Ada", Last: "Lovelace"}, Nationality: "GB", Emails: []string{"ada@example.com"},
		}, domain.Options{Caller: operator})
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = res.Customer.ID
	}
	return ids
}

// load runs writers concurrently, each on its own customer, calling do until
// the scenario ends, and measures each call.
func load(name string, writers int, do func(w, i int) error) (figure, error) {
	var (
		mu        sync.Mutex
		latencies []time.Duration
		wg        sync.WaitGroup
		firstErr  error
	)
	start := time.Now()
	deadline := start.Add(scenarioDuration)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			own := make([]time.Duration, 0, 4096)
			for i := 0; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				if err := do(w, i); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				own = append(own, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, own...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	return figure{name: name, events: len(latencies), elapsed: time.Since(start), p50: percentile(latencies, .5), p99: percentile(latencies, .99)}, firstErr
}

// The command every writer repeats: a step result always appends one event
// and goes through load, fold, decide, encode, append and fold.
func stepCommand(i int) domain.Command {
	return domain.RecordStepResult{Step: fmt.Sprintf("step-%d", i%6), Result: "passed", Details: json.RawMessage(`{"score":0.97}`)}
}

func commandService(b *testing.B, dir string, writers int) figure {
	e := newEngine(b, dir, fmt.Sprintf("service-%d", writers))
	ids := e.customers(b, writers)
	f, err := load(fmt.Sprintf("(b) command service, %d writer(s)", writers), writers, func(w, i int) error {
		_, err := e.svc.Execute(context.Background(), ids[w], stepCommand(i), domain.Options{Caller: operator})
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return f
}

const benchToken = "bench-token-0123456789abcdef"

func throughHTTP(b *testing.B, dir string, writers int) figure {
	e := newEngine(b, dir, fmt.Sprintf("http-%d", writers))
	ids := e.customers(b, writers)
	auth, err := httpapi.NewAuthenticator([]httpapi.Key{{Token: benchToken, Actor: "alice", Roles: []string{"operator"}, Company: "acme"}})
	if err != nil {
		b.Fatal(err)
	}
	api, err := httpapi.New(httpapi.Config{Service: e.svc, Auth: auth, Observer: e.m})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: writers, MaxConnsPerHost: writers}}
	body := []byte(`{"step":"liveness","result":"passed","details":{"score":0.97}}`)
	f, err := load(fmt.Sprintf("(c) HTTP API, %d writer(s)", writers), writers, func(w, i int) error {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/customers/"+ids[w]+"/steps", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+benchToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var out struct{ Revision uint64 }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			return fmt.Errorf("status %d: %v", resp.StatusCode, err)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkWritePath prints the table the README quotes.
func BenchmarkWritePath(b *testing.B) {
	dir := os.Getenv("KYC_BENCH_DIR") // a folder on the disk to measure; default a temp dir
	if dir == "" {
		dir = b.TempDir()
	}
	base := baseline(b, dir)
	figures := []figure{
		base,
		commandService(b, dir, 1),
		commandService(b, dir, 64),
		throughHTTP(b, dir, 1),
		throughHTTP(b, dir, 64),
	}
	var out strings.Builder
	w := tabwriter.NewWriter(&out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "scenario\tevents/s\tp50\tp99\tratio to (a)\t")
	for _, f := range figures {
		fmt.Fprintf(w, "%s\t%.0f\t%s\t%s\t%.2f\t\n", f.name, f.rate(), f.p50.Round(time.Microsecond), f.p99.Round(time.Microsecond), f.rate()/base.rate())
	}
	w.Flush()
	fmt.Print("\n" + out.String() + "\n")
	b.ReportMetric(figures[2].rate(), "service64-events/s")
	b.ReportMetric(figures[2].rate()/base.rate(), "service64-ratio")
}
