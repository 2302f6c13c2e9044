// Package embedded is the event store that needs no server: one SQLite file,
// reached through the pure-Go driver modernc.org/sqlite.
//
// One process writes a file at a time (a lock file next to it says which);
// inside it a single goroutine writes, and every append that arrives while
// the previous commit is being synced to disk goes into the next transaction
// (group commit), so many concurrent appends share one commit and one fsync.
// Any number of processes may read the file at the same time through
// OpenReadOnly.
//
// Where the time goes, and what is done about it:
//   - fsync: the writer commits without syncing and a second goroutine syncs
//     the WAL before any append of the commit is acknowledged (syncer.go),
//     so the writer builds the next transaction meanwhile.
//   - index pages: an index on (stream, revision) would make every commit
//     write one page per stream it touched; the log tail is indexed in bulk
//     instead (stream_index in the migration, tail.go for reading the part
//     not indexed yet).
//   - chain hashes: Append computes them on the caller's goroutine from the
//     last committed head it knows of (hints.go); the writer checks the
//     guess and hashes again only when it was wrong.
//   - reads of new events: the writer keeps the newest events in memory for
//     this process's readers (tail.go), since reading them back from the WAL
//     costs system calls.
package embedded

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/kycengine/kyc/adapters/eventstore/catchup"
	"github.com/kycengine/kyc/adapters/internal/sqlitefile"
	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/schemas"
)

// Errors of this store beyond those of domain.EventStore.
var (
	// ErrLocked: another process has the file open for writing.
	ErrLocked = errors.New("event store is locked by another writer")
	// ErrReadOnly: an append on a store opened with OpenReadOnly.
	ErrReadOnly = errors.New("event store is open read-only")
	// ErrClosed: the store was closed. It wraps domain.ErrStoreUnavailable.
	ErrClosed = fmt.Errorf("%w: store closed", domain.ErrStoreUnavailable)
	// ErrSchemaVersion: the file's schema is not the one this binary expects.
	ErrSchemaVersion = errors.New("event store schema version mismatch")
)

// Observer learns about each group commit, for metrics. It is called once
// the commit is durable, from the goroutine that answers the appends, so it
// must return quickly.
type Observer interface {
	// BatchCommitted reports one transaction: how many Append calls it
	// answered, how many events it wrote and how long it took from begin to
	// durable commit.
	BatchCommitted(requests, events int, d time.Duration)
}

// Option configures Open and OpenReadOnly.
type Option func(*config)

type config struct {
	observer     Observer
	clock        func() time.Time
	pollInterval time.Duration
	busyTimeout  time.Duration
	readConns    int
	// indexEvery and indexWhenIdle say when the writer moves the log tail
	// into stream_index; tests shrink them to exercise reads of the tail.
	indexEvery    int
	indexWhenIdle bool
	// syncWAL makes the WAL durable; tests replace it to make it fail.
	syncWAL func(*os.File) error
	// keepIndexed is how many indexed events tailIndex keeps; tests set 0
	// to make readers use stream_index.
	keepIndexed int
}

// WithObserver reports every group commit to o.
func WithObserver(o Observer) Option { return func(c *config) { c.observer = o } }

// WithPollInterval sets how often a subscription on a read-only store looks
// for events another process committed (default 250ms). Stores open for
// writing wake their subscriptions on each commit instead.
func WithPollInterval(d time.Duration) Option { return func(c *config) { c.pollInterval = d } }

// maxBatch caps the appends one transaction answers, so one commit's latency
// stays bounded however deep the queue is.
const maxBatch = 512

// walCheckpointPages is how long the WAL grows (in pages) before a commit
// copies it into the database file.
const walCheckpointPages = 8192

// subscriptionPage is the page size subscriptions read the log in.
const subscriptionPage = 512

// Store is the embedded event store. It implements domain.EventStore.
type Store struct {
	path     string
	readOnly bool
	cfg      config

	lock *os.File // the writer lock; nil when read-only
	wdb  *sql.DB  // one connection, owned by the writer goroutine
	rdb  *sql.DB
	rd   readStmts
	w    *writer

	notifier catchup.Notifier
	hints    headHints
	tail     tailIndex
	// closing ends subscriptions when the store closes.
	closing     context.Context
	stopClosing context.CancelFunc

	// mu makes "not closed, so send on reqs" atomic against Close closing
	// the channel.
	mu         sync.RWMutex
	closed     bool
	reqs       chan *appendReq
	writerDone chan struct{}
	reqPool    sync.Pool

	wal      *os.File // the WAL file, for the syncer's fsync
	syncDone chan struct{}
	// durable is the highest position known to be on disk.
	durable atomic.Int64
	// fatal is set when the store can no longer write safely.
	fatal atomic.Pointer[error]

	closeOnce sync.Once
	closeErr  error
}

var _ domain.EventStore = (*Store)(nil)

func buildConfig(opts []Option) config {
	cfg := config{
		clock:         time.Now,
		pollInterval:  250 * time.Millisecond,
		busyTimeout:   10 * time.Second,
		readConns:     max(4, runtime.GOMAXPROCS(0)),
		indexEvery:    defaultIndexEvery,
		indexWhenIdle: true,
		syncWAL:       syncData,
		keepIndexed:   defaultKeepIndexed,
	}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if cfg.clock == nil {
		cfg.clock = time.Now
	}
	if cfg.pollInterval <= 0 {
		cfg.pollInterval = 250 * time.Millisecond
	}
	return cfg
}

// Open opens the store at path for reading and writing, creating the file
// when it does not exist and migrating its schema to the current version. It
// fails with ErrLocked when another process has the file open for writing.
func Open(ctx context.Context, path string, opts ...Option) (_ *Store, err error) {
	if ctx == nil {
		return nil, errors.New("embedded: open: nil context")
	}
	abs, err := checkPath(path)
	if err != nil {
		return nil, err
	}
	s := newStore(abs, false, opts)
	defer func() {
		if err != nil {
			s.release()
		}
	}()

	if s.lock, err = lockFile(abs+".lock", abs); err != nil {
		return nil, err
	}
	// Only the writer sets the journal mode: WAL is a property of the file
	// that every later connection, readers included, picks up.
	s.wdb, err = sqlitefile.Open(abs, "", []string{
		"busy_timeout(" + fmt.Sprint(s.cfg.busyTimeout.Milliseconds()) + ")",
		"journal_mode(WAL)",
		// NORMAL, not FULL: the syncer fsyncs the WAL itself before an
		// append is acknowledged, off the writer's path (see syncer.go).
		"synchronous(NORMAL)",
		// The writer's page cache holds the hot ends of the indexes that
		// every append probes.
		"cache_size(-65536)",
		// Statement journals (each insert in a transaction keeps one, in
		// case it must be undone alone) stay in memory instead of costing
		// file writes.
		"temp_store(MEMORY)",
		// Checkpoint less often than SQLite's default 1000 pages: pages
		// written again and again (the log's end, busy streams) are copied
		// into the file once per checkpoint, not once per commit.
		"wal_autocheckpoint(" + fmt.Sprint(walCheckpointPages) + ")",
	}, true)
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", abs, err)
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxLifetime(0)
	s.wdb.SetConnMaxIdleTime(0)
	if err := migrate(ctx, s.wdb, abs); err != nil {
		return nil, err
	}
	var mode string
	if err := s.wdb.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", abs, err)
	}
	if mode != "wal" {
		// Without WAL, readers would block the writer; a file system that
		// refuses WAL (some network mounts) is not supported.
		return nil, fmt.Errorf("embedded: open %s: journal mode is %q, the file system does not support WAL", abs, mode)
	}
	if err := s.openReaders(ctx, ""); err != nil {
		return nil, err
	}
	committed := make(chan *commitRecord, 1)
	synced := make(chan struct{}, 1)
	if s.w, err = newWriter(ctx, s, committed, synced); err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", abs, err)
	}
	s.reqs = make(chan *appendReq, maxBatch)
	s.writerDone = make(chan struct{})
	go s.w.run(s.reqs, s.writerDone)
	if err := <-s.w.ready; err != nil {
		<-s.writerDone
		s.reqs = nil
		return nil, fmt.Errorf("embedded: open %s: %w", abs, err)
	}
	// From here on a failure must stop the writer before the deferred
	// release closes its connection.
	fail := func(err error) (*Store, error) {
		s.stopWriter()
		return nil, fmt.Errorf("embedded: open %s: %w", abs, err)
	}
	s.syncDone = make(chan struct{})
	if err := s.syncAll(); err != nil {
		close(s.syncDone)
		return fail(err)
	}
	if s.wal, err = os.Open(abs + "-wal"); err != nil {
		close(s.syncDone)
		return fail(err)
	}
	// The writer's start is done (ready), so written is stable to read.
	s.durable.Store(s.w.written)
	go s.syncLoop(committed, synced, s.syncDone)
	return s, nil
}

// OpenReadOnly opens an existing store for reading only, for commands (replay,
// verify) that may run while a server writes the same file. It neither takes
// the writer lock nor writes: a file whose schema is not current is refused
// with ErrSchemaVersion rather than migrated. Append fails with ErrReadOnly.
// Subscriptions poll for events the writing process commits.
func OpenReadOnly(ctx context.Context, path string, opts ...Option) (_ *Store, err error) {
	if ctx == nil {
		return nil, errors.New("embedded: open: nil context")
	}
	abs, err := checkPath(path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("embedded: open %s read-only: %w", abs, err)
	}
	s := newStore(abs, true, opts)
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	if err := s.openReaders(ctx, "ro"); err != nil {
		return nil, err
	}
	if err := checkSchema(ctx, s.rdb, abs); err != nil {
		return nil, err
	}
	return s, nil
}

func newStore(path string, readOnly bool, opts []Option) *Store {
	s := &Store{path: path, readOnly: readOnly, cfg: buildConfig(opts)}
	s.tail.keep = s.cfg.keepIndexed
	s.closing, s.stopClosing = context.WithCancel(context.Background())
	s.reqPool.New = func() any { return &appendReq{resp: make(chan appendResp, 1), vals: make([]driver.Value, 0, numCols)} }
	return s
}

func (s *Store) openReaders(ctx context.Context, mode string) error {
	var err error
	s.rdb, err = sqlitefile.Open(s.path, mode, []string{
		"busy_timeout(" + fmt.Sprint(s.cfg.busyTimeout.Milliseconds()) + ")",
		"query_only(1)",
	}, false)
	if err != nil {
		return fmt.Errorf("embedded: open %s: %w", s.path, err)
	}
	s.rdb.SetMaxOpenConns(s.cfg.readConns)
	s.rdb.SetMaxIdleConns(s.cfg.readConns)
	if err := s.rdb.PingContext(ctx); err != nil {
		return fmt.Errorf("embedded: open %s: %w", s.path, err)
	}
	if err := s.rd.prepare(ctx, s.rdb); err != nil {
		return fmt.Errorf("embedded: open %s: %w", s.path, err)
	}
	return nil
}

func newProvider(db *sql.DB) (*goose.Provider, error) {
	return goose.NewProvider(goose.DialectSQLite3, db, schemas.Migrations("sqlite"),
		goose.WithDisableGlobalRegistry(true))
}

func migrate(ctx context.Context, db *sql.DB, path string) error {
	p, err := newProvider(db)
	if err == nil {
		err = sqlitefile.Migrate(ctx, p, path, ErrSchemaVersion)
	}
	if err != nil {
		return fmt.Errorf("embedded: %w", err)
	}
	return nil
}

func checkSchema(ctx context.Context, db *sql.DB, path string) error {
	p, err := newProvider(db)
	if err == nil {
		err = sqlitefile.CheckSchema(ctx, p, path, ErrSchemaVersion)
	}
	if err != nil {
		return fmt.Errorf("embedded: %w", err)
	}
	return nil
}

// Path is the absolute path of the store's file.
func (s *Store) Path() string { return s.path }

// Close waits for queued appends to commit, ends subscriptions (they return
// ErrClosed) and releases the file. Appends after Close fail with ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopClosing()
		s.stopWriter()
		s.closeErr = s.release()
	})
	return s.closeErr
}

// stopWriter lets the writer and the syncer finish what is queued and waits
// for them.
func (s *Store) stopWriter() {
	if s.reqs == nil {
		return
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	// No sender is between its closed check and its send now.
	close(s.reqs)
	<-s.writerDone
	<-s.syncDone
}

// release closes whatever is open, readers first, so the writer's connection
// is the last and checkpoints the WAL into the file.
func (s *Store) release() error {
	var errs []error
	errs = append(errs, s.rd.close())
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.close())
	}
	if s.wal != nil {
		errs = append(errs, s.wal.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("embedded: close %s: %w", s.path, err)
	}
	return nil
}

func checkPath(path string) (string, error) {
	abs, err := sqlitefile.CheckPath(path)
	if err != nil {
		return "", fmt.Errorf("embedded: open: %w", err)
	}
	return abs, nil
}
