// Package kurrentdb is the event store on a KurrentDB (EventStoreDB) node or
// cluster, reached through the official gRPC client, EventStore-Client-Go v4.
//
// Mapping. Each domain stream is a KurrentDB stream of the same name and
// revision numbers; an event keeps the engine's id as its KurrentDB event id,
// its type, and its data as the event's data, byte for byte. The rest of the
// envelope (schema version, occurred-at, actor, correlation and causation,
// idempotency key, the personal part, the chain hashes) travels as the
// event's custom metadata, a small JSON document. The recorded-at time is
// the server's `created` stamp and the global position is KurrentDB's
// (commit, prepare) position in $all, which is domain.Position as it is.
//
// The log. $all also holds system events and streams other tools wrote, so
// the log of this store is the events of the streams whose names start with
// one of the configured prefixes (WithStreamPrefixes; the engine's streams
// start with "customer-"). Subscriptions ask the server to filter $all on
// those prefixes; ReadAll, which the client cannot filter on the server,
// skips other events itself.
//
// Appends. KurrentDB checks the expected revision of an append, but the port
// asks for more than it keeps: the hash chain needs the head's hash, an exact
// retry must answer with the original result whatever it expects, and an
// event id must be unique across streams (KurrentDB keeps ids unique per
// stream only). So Append reads the stream first, answers retries and
// refuses duplicates from what it read, checks the caller's expectation
// against it, and then appends expecting exactly the revision it read: if
// another writer got in between, the server refuses and Append reads again.
// Uniqueness across streams is kept by claims: before an event is appended,
// a one-event stream named after its id (claimPrefix) is created expecting
// no stream, naming the stream the event goes to; a claim that names another
// stream makes the append a duplicate. Claims are written before the event,
// so a crash can leave a claim whose event never arrived; its id then stays
// refused for other streams, never for a retry into the same stream.
// Idempotency keys get a stream each as well (keyPrefix), appended to before
// the events, listing the ids each append carried; FindByIdempotencyKey
// follows the listed ids and ignores those that were never stored.
//
// Connections. The client gives up for good when it cannot discover the
// server (it closes itself); the store then builds a new client for the
// next call, so a server that comes back is used again without a restart.
// Calls made while it is away fail with domain.ErrStoreUnavailable;
// subscriptions wait and resume from the last event they delivered.
package kurrentdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kycengine/kyc/domain"
)

// ErrClosed: the store was closed. It wraps domain.ErrStoreUnavailable.
var ErrClosed = fmt.Errorf("%w: store closed", domain.ErrStoreUnavailable)

const (
	// claimPrefix and keyPrefix name the bookkeeping streams; they must not
	// start with a log prefix, and Open refuses prefixes that would match them.
	claimPrefix = "kyc-event-id-"
	keyPrefix   = "kyc-idempotency-"
	// DefaultStreamPrefix is the prefix of the engine's streams.
	DefaultStreamPrefix = "customer-"
)

// Option configures Open.
type Option func(*config)

type config struct {
	logger        *slog.Logger
	prefixes      []string
	retryInterval time.Duration
	maxAttempts   int
	// beforeAppend, when set, runs after Append read the stream and right
	// before it appends; tests use it to move the stream in between.
	beforeAppend func(stream string)
}

// WithLogger sets the logger (default slog.Default()); the client's own log
// lines go there too.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithStreamPrefixes sets which streams make up the log (default
// "customer-"): ReadAll and SubscribeAll see only events of streams whose
// names start with one of them.
func WithStreamPrefixes(prefixes ...string) Option {
	return func(c *config) { c.prefixes = append([]string(nil), prefixes...) }
}

// WithRetryInterval sets how long a subscription waits before it resumes
// after the server went away (default 500ms).
func WithRetryInterval(d time.Duration) Option { return func(c *config) { c.retryInterval = d } }

const (
	defaultRetryInterval = 500 * time.Millisecond
	// defaultMaxAttempts bounds the reads and appends one Append makes when
	// other writers keep moving the stream under an expectation that allows
	// any head (ExpectAny, ExpectStreamExists).
	defaultMaxAttempts = 64
)

// Store is a domain.EventStore on KurrentDB. It is safe for concurrent use.
type Store struct {
	conf     esdb.Configuration
	log      *slog.Logger
	prefixes []string
	retry    time.Duration
	attempts int
	hook     func(stream string)

	mu     sync.Mutex
	client *esdb.Client
	closed bool
}

// Open connects to the KurrentDB named by url (esdb://host:port?tls=false,
// esdb+discover://... for a cluster, with credentials and TLS settings as the
// client's connection string allows) and checks that $all can be read.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	c := config{logger: slog.Default(), prefixes: []string{DefaultStreamPrefix}, retryInterval: defaultRetryInterval, maxAttempts: defaultMaxAttempts}
	for _, o := range opts {
		o(&c)
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if err := checkPrefixes(c.prefixes); err != nil {
		return nil, err
	}
	if c.retryInterval <= 0 {
		return nil, fmt.Errorf("kurrentdb: retry interval %s is not positive", c.retryInterval)
	}
	conf, err := esdb.ParseConnectionString(url)
	if err != nil {
		return nil, fmt.Errorf("kurrentdb: connection string: %w", err)
	}
	conf.Logger = clientLogger(c.logger)
	s := &Store{conf: *conf, log: c.logger, prefixes: c.prefixes, retry: c.retryInterval, attempts: c.maxAttempts, hook: c.beforeAppend}
	if err := s.ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func checkPrefixes(prefixes []string) error {
	if len(prefixes) == 0 {
		return errors.New("kurrentdb: no stream prefixes: the log would be empty")
	}
	for _, p := range prefixes {
		switch {
		case p == "":
			return errors.New("kurrentdb: an empty stream prefix would take in every stream, system and bookkeeping streams included")
		case strings.HasPrefix(p, "$"):
			return fmt.Errorf("kurrentdb: stream prefix %q names system streams", p)
		case strings.HasPrefix(claimPrefix, p), strings.HasPrefix(keyPrefix, p):
			return fmt.Errorf("kurrentdb: stream prefix %q would take in this store's bookkeeping streams (%s..., %s...)", p, claimPrefix, keyPrefix)
		}
	}
	return nil
}

// ping reads the last event of $all: it proves the server answers and that
// the credentials may read the log.
func (s *Store) ping(ctx context.Context) error {
	c, err := s.current()
	if err != nil {
		return err
	}
	rs, err := c.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
	if err == nil {
		defer rs.Close()
		_, err = rs.Recv()
		if isEOF(err) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("kurrentdb: read $all at %s: %w", s.conf.Address, s.classify(ctx, c, err))
	}
	return nil
}

// Close closes the connection; calls after it fail with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.client != nil {
		err := s.client.Close()
		s.client = nil
		return err
	}
	return nil
}

// current returns the client, building one when there is none.
func (s *Store) current() (*esdb.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.client == nil {
		conf := s.conf
		c, err := esdb.NewClient(&conf)
		if err != nil {
			return nil, fmt.Errorf("kurrentdb: %w", err)
		}
		s.client = c
	}
	return s.client, nil
}

// discard drops a client that closed itself, so the next call builds a
// fresh one; a client that another call replaced already is left alone.
func (s *Store) discard(c *esdb.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == c {
		s.client = nil
		c.Close()
	}
}

// classify turns a client error into the port's errors. The caller's own
// cancellation stays what it is.
func (s *Store) classify(ctx context.Context, c *esdb.Client, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	if errors.Is(err, domain.ErrStoreUnavailable) {
		return err
	}
	var esErr *esdb.Error
	if errors.As(err, &esErr) {
		switch esErr.Code() {
		case esdb.ErrorCodeStreamDeleted:
			return fmt.Errorf("%w: %w", domain.ErrStreamDeleted, err)
		case esdb.ErrorCodeResourceNotFound:
			return fmt.Errorf("%w: %w", domain.ErrStreamNotFound, err)
		case esdb.ErrorCodeConnectionClosed:
			// The client gave up discovering the server and will not try
			// again; the next call gets a new one.
			s.discard(c)
			return fmt.Errorf("%w: %w", domain.ErrStoreUnavailable, err)
		case esdb.ErrorUnavailable, esdb.ErrorCodeDeadlineExceeded, esdb.ErrorCodeNotLeader, esdb.ErrorAborted:
			return fmt.Errorf("%w: %w", domain.ErrStoreUnavailable, err)
		}
	}
	if isEOF(err) {
		// The server ended a stream it should have kept open: it is going away.
		return fmt.Errorf("%w: %w", domain.ErrStoreUnavailable, err)
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted:
			return fmt.Errorf("%w: %w", domain.ErrStoreUnavailable, err)
		}
	}
	return err
}

// clientLogger sends the client's log lines to slog. The client reports
// every failed call as an error on its own; the store reports what matters
// to the caller, so those lines are warnings at most.
func clientLogger(l *slog.Logger) esdb.LoggingFunc {
	return func(level esdb.LogLevel, format string, args ...any) {
		lvl := slog.LevelDebug
		if level == esdb.LogWarn || level == esdb.LogError {
			lvl = slog.LevelWarn
		}
		if l.Enabled(context.Background(), lvl) {
			l.Log(context.Background(), lvl, "kurrentdb client: "+fmt.Sprintf(format, args...))
		}
	}
}

// inLog reports whether a stream's events belong to the log.
func (s *Store) inLog(stream string) bool {
	for _, p := range s.prefixes {
		if strings.HasPrefix(stream, p) {
			return true
		}
	}
	return false
}
