package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/kycengine/kyc/adapters/demo"
	"github.com/kycengine/kyc/adapters/httpapi"
	"github.com/kycengine/kyc/adapters/metrics"
	"github.com/kycengine/kyc/domain"
)

type serveOptions struct {
	store         storeFlags
	addr          string
	keysFile      string
	demo          bool
	demoCustomers int
	logLevel      string
	bus           string
	socketSecret  string
	maxReadLag    time.Duration
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP API, the commands and the projections",
		Long: `serve runs the engine: the HTTP API, the command service, the projections
and the store. By default everything lives in the --data folder (SQLite
files, no server needed). With --events postgres://... the events (and, unless
--read says otherwise, the read models) live in PostgreSQL, and any number
of serve processes may share that database: commands stay consistent through
optimistic concurrency and each projection runs in one process at a time.

Without --keys, the first start writes a superuser token into the data folder
and logs where it is; send it as Authorization: Bearer <token>.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return serve(cmd.Context(), o) },
	}
	o.store.register(cmd.Flags())
	cmd.Flags().StringVar(&o.addr, "addr", ":8080", "address to listen on")
	cmd.Flags().StringVar(&o.keysFile, "keys", "", `JSON array of {"token","actor","roles","company"} (default: a superuser token in the data folder)`)
	cmd.Flags().BoolVar(&o.demo, "demo", false, "fill an empty store with demo customers across all lifecycles")
	cmd.Flags().IntVar(&o.demoCustomers, "demo-customers", 3000, "how many customers --demo creates")
	cmd.Flags().StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().StringVar(&o.bus, "bus", os.Getenv("KYC_BUS"),
		"where the relay publishes every event: empty or memory:// for the in-process channel, nats://... for NATS JetStream, postgres://... for PostgreSQL (env KYC_BUS)")
	cmd.Flags().StringVar(&o.socketSecret, "socket-secret", os.Getenv("KYC_SOCKET_SECRET"),
		"key (32+ bytes) that signs live socket tokens; every process behind one load balancer needs the same (default: random per process) (env KYC_SOCKET_SECRET)")
	cmd.Flags().DurationVar(&o.maxReadLag, "max-read-lag", defaultMaxReadLag,
		"keep the read models of the projections this process runs within this much of the log under heavy writes, by holding new commands while a projection is behind (0: never hold; a command waits at most 1s)")
	return cmd
}

// defaultMaxReadLag keeps the lists about a tenth of a second (p99) behind
// the commands instead of over a second when 64 writers outrun the
// projections on the 2-core development machine (docs/benchmarks.md, read
// models: 20,000 customers on SQLite, 2,000 on PostgreSQL).
const defaultMaxReadLag = 50 * time.Millisecond

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

func serve(ctx context.Context, o serveOptions) error {
	log, err := newLogger(o.logLevel)
	if err != nil {
		return err
	}
	if o.demoCustomers <= 0 {
		return errors.New("--demo-customers must be positive")
	}
	lifecycles, err := o.store.lifecycles()
	if err != nil {
		return err
	}
	m := metrics.New()
	store, err := o.store.openEvents(ctx, false, log, m)
	if err != nil {
		return err
	}
	defer store.Close()
	instrumented := m.InstrumentStore(store)
	auth, err := authenticator(o, log)
	if err != nil {
		return err
	}
	if o.maxReadLag < 0 {
		return errors.New("--max-read-lag must not be negative")
	}
	codec := domain.NewCodec()
	rs, err := o.store.openReadSide(ctx, readSideConfig{events: store, streams: store, lifecycles: lifecycles,
		codec: codec, log: log, observer: m.Projections(), maxLag: o.maxReadLag})
	if err != nil {
		return err
	}
	defer rs.store.Close()
	m.Admission(rs.engine)
	svc, err := domain.NewService(domain.ServiceConfig{
		Store: instrumented, Idempotency: instrumented, Lifecycles: lifecycles, Codec: codec, Observer: m, Admission: rs.engine,
	})
	if err != nil {
		return err
	}
	engineCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		stopEngine()
		rs.engine.Wait()
	}()
	if err := rs.engine.Start(engineCtx); err != nil {
		return err
	}
	deliver, err := startDelivery(ctx, &o.store, o.bus, store, svc, rs.leases, log, m)
	if err != nil {
		return err
	}
	defer deliver.Close()
	socket, err := startLive(ctx, store, o.socketSecret, rs.leases != nil, log)
	if err != nil {
		return err
	}
	defer socket.Close()
	api, err := httpapi.New(httpapi.Config{
		Service: svc, Auth: auth, Logger: log, Metrics: m.Handler(), Observer: m,
		Reader: rs.reader, Projections: rs.engine, SocketTokens: socket.tokens, Socket: socket.socket, Webhooks: deliver.webhooks,
		Ready: func(ctx context.Context) error {
			_, err := store.ReadAll(ctx, domain.Start, 1)
			return err
		},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.addr, err)
	}
	srv := &http.Server{
		Handler:           api.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("serving", "addr", ln.Addr().String(), "store", o.store.describeEvents(), "read_models", o.store.describeRead(), "default_lifecycle", lifecycles.Default())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if o.demo {
		go seedDemo(ctx, log, svc, store, o.demoCustomers)
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdown, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

func authenticator(o serveOptions, log *slog.Logger) (*httpapi.Authenticator, error) {
	if o.keysFile != "" {
		keys, err := httpapi.LoadKeys(o.keysFile)
		if err != nil {
			return nil, err
		}
		log.Info("keys loaded", "file", o.keysFile, "keys", len(keys))
		return httpapi.NewAuthenticator(keys)
	}
	key, path, created, err := httpapi.EnsureSuperuserKey(o.store.dataDir)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("no --keys given: wrote a superuser token; send it as Authorization: Bearer <token>", "token_file", path)
	} else {
		log.Info("no --keys given: using the superuser token", "token_file", path)
	}
	return httpapi.NewAuthenticator([]httpapi.Key{key})
}

// seedDemo fills an empty store; a store with events is left alone, so
// restarting `make run` keeps what is there.
func seedDemo(ctx context.Context, log *slog.Logger, svc *domain.Service, store domain.EventStore, n int) {
	existing, err := store.ReadAll(ctx, domain.Start, 1)
	if err != nil {
		log.Error("demo: cannot read the store", "err", err)
		return
	}
	if len(existing) > 0 {
		log.Info("demo: the store has events already; not adding demo customers")
		return
	}
	log.Info("demo: creating customers", "customers", n)
	start := time.Now()
	step := max(n/10, 1)
	err = demo.Seed(ctx, svc, n, 32, uint64(time.Now().UnixNano()), func(done, total int) {
		if done%step == 0 || done == total {
			elapsed := time.Since(start)
			rate := float64(done) / elapsed.Seconds()
			eta := time.Duration(float64(total-done)/rate) * time.Second
			log.Info("demo: progress", "done", done, "total", total, "customers_per_s", int(rate), "eta", eta.Round(time.Second).String())
		}
	})
	if err != nil {
		log.Error("demo: stopped", "err", err)
		return
	}
	log.Info("demo: done", "customers", n, "took", time.Since(start).Round(time.Millisecond).String())
}
