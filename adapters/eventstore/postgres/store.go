// Package postgres is the event store for deployments that share one
// PostgreSQL database between several kyc processes, reached through pgx.
//
// Writing. Appends to one stream take turns on that stream's row in
// kyc_streams, which holds its head (last revision and chain hash); a unique
// (stream, revision) key backs the row up. Each process hands its appends to
// two committer goroutines, each of which writes whatever appends are queued
// (one per stream) in a single statement (appendSQL), so one transaction and
// one round trip carry many appends: a group commit. That matters twice:
// PostgreSQL serialises the commits of all transactions that NOTIFY, disk
// flush included, so one notifying transaction per append would cap the
// whole server at one append per flush; and the per-statement cost is paid
// once per batch instead of once per append. While one batch is in flight,
// the other committer waits a little for its batch to grow (commitLoop).
// An append's chain hashes are computed in Go, on the caller's goroutine, on
// a guess of its stream's head (the head this process last saw, from an
// append or a read that reached the stream's end). The statement moves the
// head only from that guess, under the row's lock; otherwise it answers with
// the head, and Append checks the expected revision against it
// (ExpectedRevision.Allows) and either reports the conflict or hashes again.
// Nothing an append is refused for raises an error in its batch, so one
// append cannot fail the others.
//
// Plans. Every query looks rows up by key or reads a key range, and pgx
// prepares each once per connection. The pool's connections are told so
// (enable_seqscan, enable_hashjoin and enable_mergejoin off, generic plans):
// a new log has no statistics, and a plan picked while it was small would be
// kept as it grows until they caught up.
//
// Order. Every event carries the id of the transaction that wrote it
// (pg_current_xact_id(), type xid8) and a sequence number; the global order
// is (transaction id, sequence), which is domain.Position{Commit, Prepare}.
// Transaction ids are handed out when a transaction first writes, not when
// it commits, so a transaction with a lower id can commit after one with a
// higher id. Readers of the log (ReadAll, CountAfter, Tail, subscriptions)
// therefore see only events below a horizon under which every append has
// ended, so no event can later appear behind a position a reader has
// passed. A plain sequence would not do: numbers are taken in one order and
// committed in another, and a reader that has seen 7 never goes back for a
// 6 that commits after it. The horizon counts append transactions only
// (each announces itself with a shared advisory lock; see horizonSQL), not
// every transaction of the server: a long transaction elsewhere, or the
// read models' own commits, do not hold subscribers back.
//
// Notifications. The append transaction calls pg_notify; each Store keeps one
// connection that LISTENs, shared by all its subscriptions (catchup.Run) and
// re-established when it drops, and the committers also wake this process's
// subscriptions themselves after each commit. Subscriptions poll as well
// (WithPollInterval), for notifications lost while the connection was down.
// A subscription read that stops at the horizon while committed events wait
// above it is repeated after a few milliseconds instead of waiting for the
// next notification, since the transaction it waits for may notify nobody.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kycengine/kyc/adapters/eventstore/catchup"
	"github.com/kycengine/kyc/domain"
)

// Errors of this store beyond those of domain.EventStore.
var (
	// ErrClosed: the store was closed. It wraps domain.ErrStoreUnavailable.
	ErrClosed = fmt.Errorf("%w: store closed", domain.ErrStoreUnavailable)
	// ErrSchemaVersion: the database's schema is newer than this binary knows.
	ErrSchemaVersion = errors.New("event store schema version mismatch")
)

// Observer learns about each group commit, for metrics; the embedded store's
// observers fit. It is called from a committer goroutine, so it must return
// quickly.
type Observer interface {
	// BatchCommitted reports one transaction: how many Append calls it
	// answered, how many events it wrote and how long it took.
	BatchCommitted(requests, events int, d time.Duration)
}

// Option configures Open.
type Option func(*config)

type config struct {
	logger       *slog.Logger
	observer     Observer
	clock        func() time.Time
	pollInterval time.Duration
	committers   int
	maxBatch     int
	maxLinger    time.Duration
	// beforeCommit, when set, runs in each batch's transaction after its
	// statement and before COMMIT; tests use it to commit out of order.
	beforeCommit func(ctx context.Context, streams []string)
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithObserver reports every group commit to o.
func WithObserver(o Observer) Option { return func(c *config) { c.observer = o } }

// WithPollInterval sets how often a subscription reads the log without
// having been notified (default 500ms): the fallback for notifications lost
// while the listening connection was down.
func WithPollInterval(d time.Duration) Option { return func(c *config) { c.pollInterval = d } }

// withCommitters sets how many batches may be in flight at once.
func withCommitters(n int) Option { return func(c *config) { c.committers = n } }

// withMaxLinger bounds how long a committer waits for a batch to fill.
func withMaxLinger(d time.Duration) Option { return func(c *config) { c.maxLinger = d } }

// withBeforeCommit installs a hook that runs before each batch commits.
func withBeforeCommit(f func(ctx context.Context, streams []string)) Option {
	return func(c *config) { c.beforeCommit = f }
}

const (
	defaultPollInterval = 500 * time.Millisecond
	// Two committers: while one waits for its commit to be flushed (and,
	// because of NOTIFY, for the commit before it), the other runs its
	// statement. More only make batches smaller.
	defaultCommitters = 2
	// defaultMaxBatch caps the appends one statement carries. Without
	// hash joins the statement joins a batch's rows to each other by nested
	// loops, which stay cheap at this size; beyond it a commit carries
	// enough appends that larger batches would not add throughput.
	defaultMaxBatch = 128
	// defaultMaxLinger bounds how long a committer waits for its batch to
	// grow to the size of the batch before it (see commitLoop). The wait
	// usually ends much sooner, when the appends it waits for arrive;
	// 300µs and 600µs measured alike, and the bound is what a burst's
	// last batch pays when no more appends come.
	defaultMaxLinger = 300 * time.Microsecond
	// subscriptionPage is the page size subscriptions read the log in.
	subscriptionPage = 512
	// subscriptionReadInterval spaces the reads of a subscription that has
	// caught up. Under 64 writers the commits came every 0.6 ms or so and
	// a subscription read after each, for about as many events as the
	// batch held, at 30-40 µs of server time an event. Spaced by 3 ms, with
	// one subscription following 64 writers: 8-12% more appends a second
	// in a harness of that alone (1 ms gained 2-4%, 5 and 10 ms no more
	// than 3), 1-8% in the benchmark, and 10% less server time an event,
	// for about 1.5 ms more from append to subscriber (p50).
	subscriptionReadInterval = 3 * time.Millisecond
	// notifyChannel is the LISTEN/NOTIFY channel of appends.
	notifyChannel = "kyc_events"
)

func buildConfig(opts []Option) config {
	cfg := config{
		logger:       slog.Default(),
		clock:        time.Now,
		pollInterval: defaultPollInterval,
		committers:   defaultCommitters,
		maxBatch:     defaultMaxBatch,
		maxLinger:    defaultMaxLinger,
	}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.clock == nil {
		cfg.clock = time.Now
	}
	if cfg.pollInterval <= 0 {
		cfg.pollInterval = defaultPollInterval
	}
	cfg.committers = max(cfg.committers, 1)
	cfg.maxBatch = max(cfg.maxBatch, 1)
	cfg.maxLinger = max(cfg.maxLinger, 0)
	return cfg
}

// Store is the PostgreSQL event store. It implements domain.EventStore.
type Store struct {
	cfg  config
	pool *pgxpool.Pool
	// appendPool holds the committers' connections.
	appendPool *pgxpool.Pool
	listen     *pgx.ConnConfig // for the LISTEN connection, which is not pooled
	log        *slog.Logger

	heads    headCache
	notifier catchup.Notifier
	recheck  rechecker

	// closing ends subscriptions and the listener when the store closes.
	closing     context.Context
	stopClosing context.CancelFunc
	// mu makes "not closed, so send on reqs" atomic against Close closing
	// the channel.
	mu         sync.RWMutex
	closed     bool
	reqs       chan *appendReq
	pacing     batchPacing
	committers sync.WaitGroup
	background sync.WaitGroup
	listenOnce sync.Once
	closeOnce  sync.Once
}

var _ domain.EventStore = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string, as pgx reads them; pool_max_conns and the other pgxpool
// settings apply to the pool of reads and subscriptions, and the committers
// have one connection each besides), brings its schema up to date and
// returns the store. Several processes may open the same database at once:
// migrations run under an advisory lock. A server that cannot be reached is
// domain.ErrStoreUnavailable.
func Open(ctx context.Context, url string, opts ...Option) (_ *Store, err error) {
	if ctx == nil {
		return nil, errors.New("postgres: open: nil context")
	}
	pcfg, err := parseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg := buildConfig(opts)
	if !strings.Contains(url, "pool_max_conns") {
		// Readers and subscriptions (the committers have a pool of their own).
		pcfg.MaxConns = max(pcfg.MaxConns, 6)
	}
	if err := migrate(ctx, pcfg.ConnConfig.Copy()); err != nil {
		return nil, err
	}
	listen := pcfg.ConnConfig.Copy()
	listen.RuntimeParams["application_name"] = appName(listen, "kyc-events-listener")
	pcfg.ConnConfig.RuntimeParams["application_name"] = appName(pcfg.ConnConfig, "kyc-events")
	// Every query of the store looks rows up by key or reads a key range,
	// and pgx prepares each once per connection. The planner is told so:
	// no sequential scans, no hash or merge joins (which would read a whole
	// table to join a batch's few rows to it), one plan per query. A plan
	// chosen from the statistics of a new, small log would otherwise be
	// kept while the log grows, until statistics caught up.
	for k, v := range map[string]string{
		"enable_seqscan": "off", "enable_hashjoin": "off", "enable_mergejoin": "off",
		"plan_cache_mode": "force_generic_plan",
	} {
		if _, set := pcfg.ConnConfig.RuntimeParams[k]; !set {
			pcfg.ConnConfig.RuntimeParams[k] = v
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", classify(ctx, err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", classify(ctx, err))
	}
	// Each committer has a connection of its own: in a pool shared with the
	// callers' stream reads, a batch that many callers wait on would queue
	// behind those reads for a connection.
	acfg := pcfg.Copy()
	acfg.MaxConns, acfg.MinConns = int32(cfg.committers), 0
	appendPool, err := pgxpool.NewWithConfig(ctx, acfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", classify(ctx, err))
	}
	s := &Store{cfg: cfg, pool: pool, appendPool: appendPool, listen: listen, log: cfg.logger}
	s.closing, s.stopClosing = context.WithCancel(context.Background())
	s.recheck.wake = s.notifier.Broadcast
	s.recheck.max = min(cfg.pollInterval, maxRecheckDelay)
	s.reqs = make(chan *appendReq, cfg.maxBatch)
	for range cfg.committers {
		s.committers.Go(s.commitLoop)
	}
	return s, nil
}

// appName keeps an application_name the URL set, so operators can tell
// deployments apart in pg_stat_activity.
func appName(cc *pgx.ConnConfig, def string) string {
	if name := cc.RuntimeParams["application_name"]; name != "" {
		return name
	}
	return def
}

func parseConfig(url string) (*pgxpool.Config, error) {
	if strings.TrimSpace(url) == "" {
		return nil, errors.New("postgres: open: empty database URL")
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message leaves the password out.
		return nil, fmt.Errorf("postgres: open: invalid database URL: %w", err)
	}
	return cfg, nil
}

// Close waits for queued appends to commit, ends subscriptions (they return
// ErrClosed) and closes the connections. Appends after Close fail with
// ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		// No sender is between its closed check and its send now.
		close(s.reqs)
		s.committers.Wait()
		s.stopClosing()
		s.background.Wait()
		s.recheck.stop()
		s.appendPool.Close()
		s.pool.Close()
	})
	return nil
}

func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// classify marks errors that mean the server cannot be reached with
// domain.ErrStoreUnavailable. The caller's own cancellation stays what it is.
func classify(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || errors.Is(err, domain.ErrStoreUnavailable) {
		return err
	}
	if unreachable(err) {
		return fmt.Errorf("%w: %w", domain.ErrStoreUnavailable, err)
	}
	return err
}

func unreachable(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"): // connection exception
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // shutdown, crash, starting up
			return true
		case pgErr.Code == "53300": // too many connections
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || pgconn.Timeout(err)
}
