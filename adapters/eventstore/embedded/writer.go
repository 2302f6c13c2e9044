package embedded

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/kycengine/kyc/domain"
)

type appendReq struct {
	ctx      context.Context
	stream   string
	expected domain.ExpectedRevision
	events   []domain.EventData
	// vals holds each event's insert parameters, numCols per event. The
	// caller fills what it knows so that work runs in parallel on the
	// callers' goroutines; the writer fills the colStream, colRevision,
	// colRecordedAt, colPrevHash and colHash slots.
	vals []driver.Value
	// hashes are the events' chain hashes, computed by the caller on the
	// guess that the stream's head is guess; the writer uses them only
	// when the guess is right, and hashes itself otherwise.
	hashes []string
	guess  streamHead
	// recorded are the events as they will be stored, prepared by the
	// caller; the writer fills in what it assigns and hands them to
	// tailIndex. Fresh for every append: tailIndex keeps them.
	recorded []domain.RecordedEvent
	resp     chan appendResp // buffered: the writer never waits for a caller
}

type appendResp struct {
	res domain.AppendResult
	err error
}

const insertSQL = `INSERT INTO events (id, stream, revision, type, schema_version, occurred_at, recorded_at,
	actor_kind, actor_id, actor_company, correlation_id, causation_id, idempotency_key, data, personal, prev_hash, hash)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// Parameter slots of insertSQL.
const (
	colID = iota
	colStream
	colRevision
	colType
	colSchemaVersion
	colOccurredAt
	colRecordedAt
	colActorKind
	colActorID
	colActorCompany
	colCorrelationID
	colCausationID
	colIdempotencyKey
	colData
	colPersonal
	colPrevHash
	colHash
	numCols
)

// Append implements domain.EventStore. The events are durable when it
// returns nil. When ctx ends while the append is queued or committing, the
// outcome is unknown: retrying with the same event ids is safe.
func (s *Store) Append(ctx context.Context, stream string, expected domain.ExpectedRevision, events []domain.EventData) (domain.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return domain.AppendResult{}, err
	}
	if s.readOnly {
		return domain.AppendResult{}, fmt.Errorf("embedded: append to %s: %w", stream, ErrReadOnly)
	}
	if err := s.fatalErr(); err != nil {
		return domain.AppendResult{}, fmt.Errorf("embedded: append to %s: %w", stream, err)
	}
	if err := validateAppend(stream, events); err != nil {
		return domain.AppendResult{}, err
	}
	req := s.reqPool.Get().(*appendReq)
	req.ctx, req.stream, req.expected, req.events = ctx, stream, expected, events
	req.vals = encodeEvents(req.vals[:0], events)
	req.recorded = prepareRecorded(stream, events)
	req.hashes = s.hints.precompute(req.hashes[:0], &req.guess, stream, expected, events)

	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return domain.AppendResult{}, fmt.Errorf("embedded: append to %s: %w", stream, ErrClosed)
	}
	select {
	case s.reqs <- req:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return domain.AppendResult{}, ctx.Err()
	}

	select {
	case r := <-req.resp:
		clear(req.vals)
		clear(req.hashes)
		*req = appendReq{resp: req.resp, vals: req.vals[:0], hashes: req.hashes[:0]}
		s.reqPool.Put(req)
		return r.res, r.err
	case <-ctx.Done():
		// The writer still answers into resp, so req cannot be reused.
		return domain.AppendResult{}, ctx.Err()
	}
}

// prepareRecorded copies the events into what readers get back, in the form
// they would get from the database.
func prepareRecorded(stream string, events []domain.EventData) []domain.RecordedEvent {
	out := make([]domain.RecordedEvent, len(events))
	for i, e := range events {
		e.OccurredAt = time.Unix(0, e.OccurredAt.UnixNano()).UTC()
		e.Data = bytes.Clone(e.Data)
		if len(e.Data) == 0 {
			e.Data = []byte{}
		}
		e.Personal = bytes.Clone(e.Personal)
		if len(e.Personal) == 0 {
			e.Personal = nil
		}
		out[i] = domain.RecordedEvent{EventData: e, Stream: stream}
	}
	return out
}

func encodeEvents(vals []driver.Value, events []domain.EventData) []driver.Value {
	for i := range events {
		e := &events[i]
		var idem, personal driver.Value
		if e.IdempotencyKey != "" {
			idem = e.IdempotencyKey
		}
		if len(e.Personal) > 0 {
			personal = string(e.Personal)
		}
		vals = append(vals,
			e.ID.String(), nil, nil, e.Type, int64(e.SchemaVersion), e.OccurredAt.UnixNano(), nil,
			string(e.Actor.Kind), e.Actor.ID, e.Actor.Company, e.CorrelationID, e.CausationID, idem,
			string(e.Data), personal, nil, nil)
	}
	return vals
}

// Unix nanoseconds hold times between these; OccurredAt is stored that way.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

func validateAppend(stream string, events []domain.EventData) error {
	if err := domain.CheckAppend(stream, events); err != nil {
		return fmt.Errorf("embedded: %w", err)
	}
	for _, e := range events {
		if e.OccurredAt.Before(minTime) || e.OccurredAt.After(maxTime) {
			return fmt.Errorf("embedded: append to %s: event %s occurred at %s, outside the years 1678-2262", stream, e.ID, e.OccurredAt)
		}
	}
	return nil
}

// streamHead is a stream's last revision and that event's hash.
type streamHead struct {
	id     int64 // in the streams table
	last   uint64
	hash   string
	exists bool
}

const (
	// maxCachedHeads bounds the indexed stream heads the writer remembers;
	// a miss costs one probe of stream_index.
	maxCachedHeads = 1 << 16
	// defaultIndexEvery is how many events the log tail may hold before the
	// writer moves them into stream_index. Larger means fewer index page
	// writes under load and longer tail scans for readers.
	defaultIndexEvery = 512
	// idleIndexDelay is how long the writer waits for more appends before
	// it indexes a non-empty tail on its own.
	idleIndexDelay = time.Millisecond
)

// writer owns the single write connection. Everything it does runs on its
// goroutine, on the driver connection database/sql hands out through Raw:
// one append costs several statements, and the driver level spares each of
// them database/sql's locking and argument conversion.
type writer struct {
	conn *sql.Conn
	// ready reports whether the statements were prepared.
	ready chan error

	begin, commit, rollback    driver.Stmt
	savepoint, release, rollTo driver.Stmt
	insert, headOf, lookupByID driver.Stmt
	insertStream               driver.Stmt
	indexTail, setIndexed      driver.Stmt
	indexState                 driver.Stmt
	stmts                      []driver.Stmt

	// heads caches heads of streams whose events are all in stream_index;
	// it is right because the writer lock makes this goroutine the file's
	// only writer.
	heads map[string]streamHead
	// tailHeads holds the head of every stream with events not yet in
	// stream_index, so no lookup has to scan the tail.
	tailHeads  map[string]streamHead
	tailEvents int
	// pending holds the heads the open transaction moved.
	pending map[string]streamHead

	batch        []*appendReq
	answers      []appendResp
	args         []driver.NamedValue
	dest         []driver.Value
	recordedAt   driver.Value
	recordedTime time.Time
	// written is the highest position committed.
	written int64
	// committed takes each committed transaction to the syncer, which
	// answers its appends once it is durable; synced says the syncer is
	// free again. At most one transaction is with the syncer at a time.
	committed chan<- *commitRecord
	synced    <-chan struct{}
	syncBusy  bool
	fatal     func() error
	hints     *headHints
	// tail is shared with readers; txTail is what the open transaction
	// will add to it.
	tail   *tailIndex
	txTail []tailEvent

	inTx      bool
	txStart   time.Time
	txEvents  int
	txWritten int64

	indexEvery    int
	indexWhenIdle bool
	clock         func() time.Time
	ctx           context.Context
}

func newWriter(ctx context.Context, s *Store, committed chan<- *commitRecord, synced <-chan struct{}) (*writer, error) {
	conn, err := s.wdb.Conn(ctx)
	if err != nil {
		return nil, err
	}
	return &writer{
		committed:     committed,
		synced:        synced,
		fatal:         s.fatalErr,
		hints:         &s.hints,
		tail:          &s.tail,
		conn:          conn,
		ready:         make(chan error, 1),
		heads:         make(map[string]streamHead),
		tailHeads:     make(map[string]streamHead),
		pending:       make(map[string]streamHead),
		args:          make([]driver.NamedValue, numCols),
		dest:          make([]driver.Value, 3),
		indexEvery:    s.cfg.indexEvery,
		indexWhenIdle: s.cfg.indexWhenIdle,
		clock:         s.cfg.clock,
		// Statements run under the writer's own context: a batch serves many
		// callers, and none of them may cancel it for the others.
		ctx: context.Background(),
	}, nil
}

func (w *writer) prepare(dc any) error {
	pc, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return fmt.Errorf("driver connection %T cannot prepare statements", dc)
	}
	var err error
	prep := func(dst *driver.Stmt, query string) {
		if err != nil {
			return
		}
		*dst, err = pc.PrepareContext(w.ctx, query)
		if err == nil {
			w.stmts = append(w.stmts, *dst)
		}
	}
	prep(&w.begin, "BEGIN IMMEDIATE")
	prep(&w.commit, "COMMIT")
	prep(&w.rollback, "ROLLBACK")
	prep(&w.savepoint, "SAVEPOINT append")
	prep(&w.release, "RELEASE append")
	prep(&w.rollTo, "ROLLBACK TO append")
	prep(&w.insert, insertSQL)
	prep(&w.headOf, `SELECT s.id, si.revision, e.hash FROM streams s
		JOIN stream_index si ON si.stream_id = s.id JOIN events e ON e.position = si.position
		WHERE s.name = ? ORDER BY si.revision DESC LIMIT 1`)
	prep(&w.insertStream, "INSERT INTO streams (name) VALUES (?)")
	prep(&w.lookupByID, "SELECT stream, revision, position FROM events WHERE id = ?")
	prep(&w.indexTail, `INSERT INTO stream_index (stream_id, revision, position)
		SELECT s.id, e.revision, e.position FROM events e JOIN streams s ON s.name = e.stream
		WHERE e.position > (SELECT indexed_through FROM stream_index_state)`)
	prep(&w.setIndexed, "UPDATE stream_index_state SET indexed_through = (SELECT ifnull(max(position), 0) FROM events)")
	prep(&w.indexState, `SELECT m, m - indexed_through FROM stream_index_state,
		(SELECT ifnull(max(position), 0) AS m FROM events)`)
	return err
}

func (w *writer) closeStmts() error {
	var errs []error
	for _, st := range w.stmts {
		errs = append(errs, st.Close())
	}
	w.stmts = nil
	return errors.Join(errs...)
}

// run prepares the writer, reports on w.ready, then writes until reqs is
// closed and everything queued is committed.
func (w *writer) run(reqs <-chan *appendReq, done chan<- struct{}) {
	defer close(done)
	err := w.conn.Raw(func(dc any) (err error) {
		defer func() { err = errors.Join(err, w.closeStmts()) }()
		if err := w.prepare(dc); err != nil {
			return err
		}
		if err := w.start(); err != nil {
			return err
		}
		w.ready <- nil
		w.loop(reqs)
		if w.tailEvents > 0 {
			// Leave the file fully indexed for whoever opens it next.
			return w.indexOnly()
		}
		return nil
	})
	close(w.committed)
	if err != nil {
		select {
		case w.ready <- err:
		default:
		}
	}
}

func (w *writer) close() error { return w.conn.Close() }

func (w *writer) start() error {
	found, err := w.queryRow(w.indexState, nil)
	if err != nil {
		return err
	}
	if !found {
		return errors.New("stream_index_state is empty")
	}
	w.written = w.dest[0].(int64)
	if tail := w.dest[1].(int64); tail > 0 {
		// Events a previous process left unindexed are indexed now, so the
		// tail is empty and tailHeads starts out complete.
		w.tailEvents = int(tail)
		if err := w.indexOnly(); err != nil {
			return fmt.Errorf("index the log tail: %w", err)
		}
	}
	return nil
}

// loop is group commit. Each append is applied as soon as it arrives, inside
// an open transaction; the transaction commits as soon as the syncer is free,
// so it holds everything that arrived while the previous commit was being
// synced, and the writer keeps working while the syncer waits for the disk.
func (w *writer) loop(reqs <-chan *appendReq) {
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	defer idle.Stop()
	for reqs != nil || w.inTx {
		if w.syncBusy {
			// The syncer being free again matters more than the next
			// append: it is waiting for this transaction.
			select {
			case <-w.synced:
				w.syncBusy = false
			default:
			}
		}
		if w.inTx && !w.syncBusy {
			_ = w.commitTx(false) // on failure every request got its answer
			continue
		}
		in := reqs
		if len(w.batch) >= maxBatch {
			in = nil // a full transaction waits for the syncer
		}
		var synced <-chan struct{}
		if w.syncBusy {
			synced = w.synced
		}
		// Going idle with events not in stream_index: index them if nothing
		// arrives soon, so a quiet store's readers scan no tail. Under load
		// this never fires and indexing waits for indexEvery events.
		var wake <-chan time.Time
		if !w.inTx && !w.syncBusy && w.tailEvents > 0 && w.indexWhenIdle {
			idle.Reset(idleIndexDelay)
			wake = idle.C
		}
		select {
		case r, ok := <-in:
			if !ok {
				reqs = nil
				break
			}
			w.add(r)
		case <-synced:
			w.syncBusy = false
		case <-wake:
			_ = w.indexOnly()
		}
		idle.Stop()
	}
}

func (w *writer) exec(st driver.Stmt, args []driver.NamedValue) (driver.Result, error) {
	return st.(driver.StmtExecContext).ExecContext(w.ctx, args)
}

// queryRow reads the first row into w.dest; found is false when there is none.
func (w *writer) queryRow(st driver.Stmt, args []driver.NamedValue) (found bool, err error) {
	rows, err := st.(driver.StmtQueryContext).QueryContext(w.ctx, args)
	if err != nil {
		return false, err
	}
	defer func() {
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
	}()
	switch err := rows.Next(w.dest[:len(rows.Columns())]); {
	case errors.Is(err, io.EOF):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

func (w *writer) arg1(v driver.Value) []driver.NamedValue {
	w.args[0] = driver.NamedValue{Ordinal: 1, Value: v}
	return w.args[:1]
}

// errAbort marks a failure that leaves the transaction unusable.
type errAbort struct{ err error }

func (e errAbort) Error() string { return e.err.Error() }
func (e errAbort) Unwrap() error { return e.err }

// beginTx opens the transaction that the next appends go into.
func (w *writer) beginTx() error {
	if _, err := w.exec(w.begin, nil); err != nil {
		return fmt.Errorf("embedded: begin: %w", err)
	}
	w.inTx = true
	w.txStart = time.Now()
	w.txEvents = 0
	w.txWritten = w.written
	w.txTail = w.txTail[:0]
	now := w.clock().UnixNano()
	w.recordedAt = now
	w.recordedTime = time.Unix(0, now).UTC()
	w.batch = w.batch[:0]
	w.answers = w.answers[:0]
	clear(w.pending)
	return nil
}

// add applies one append inside the open transaction, opening one if needed.
func (w *writer) add(r *appendReq) {
	if err := w.fatal(); err != nil {
		r.resp <- appendResp{err: err}
		return
	}
	if !w.inTx {
		if err := w.beginTx(); err != nil {
			r.resp <- appendResp{err: err}
			return
		}
	}
	res, n, err := w.apply(r)
	var abort errAbort
	if errors.As(err, &abort) {
		w.abortTx(fmt.Errorf("embedded: append to %s: %w", r.stream, abort.err), r)
		return
	}
	w.batch = append(w.batch, r)
	w.answers = append(w.answers, appendResp{res: res, err: err})
	w.txEvents += n
}

// abortTx rolls the open transaction back and fails its appends, and extra.
func (w *writer) abortTx(err error, extra ...*appendReq) {
	// The transaction may be gone already (SQLite rolls back on some
	// errors by itself); a failing ROLLBACK then changes nothing.
	_, _ = w.exec(w.rollback, nil)
	w.inTx = false
	w.written = w.txWritten
	w.txTail = w.txTail[:0]
	clear(w.pending)
	for _, r := range append(w.batch, extra...) {
		r.resp <- appendResp{err: err}
	}
	clear(w.batch)
	w.batch = w.batch[:0]
	w.answers = w.answers[:0]
}

// indexOnly commits a transaction that only indexes the log tail.
func (w *writer) indexOnly() error {
	if err := w.beginTx(); err != nil {
		return err
	}
	return w.commitTx(true)
}

// commitTx commits the open transaction, indexing the log tail first when it
// is long or index says so, and hands the appends to the syncer.
func (w *writer) commitTx(index bool) error {
	if err := w.fatal(); err != nil {
		w.abortTx(err)
		return err
	}
	tail := w.tailEvents + w.txEvents
	indexing := tail > 0 && (index || tail >= w.indexEvery)
	if indexing {
		for _, st := range []driver.Stmt{w.indexTail, w.setIndexed} {
			if _, err := w.exec(st, nil); err != nil {
				err = fmt.Errorf("embedded: index stream tail: %w", err)
				w.abortTx(err)
				return err
			}
		}
	}
	if _, err := w.exec(w.commit, nil); err != nil {
		err = fmt.Errorf("embedded: commit: %w", err)
		w.abortTx(err)
		return err
	}
	w.inTx = false

	for k, h := range w.pending {
		w.tailHeads[k] = h
	}
	w.hints.update(w.pending)
	// The tail index learns of the commit before the syncer does, so
	// nothing becomes visible to readers without being in it.
	w.tail.add(w.txTail)
	if indexing {
		w.tail.markIndexed(w.written)
	}
	w.txTail = w.txTail[:0]
	w.tailEvents = tail
	if indexing {
		if len(w.heads)+len(w.tailHeads) > maxCachedHeads {
			// Forget an arbitrary part; map iteration order is random.
			drop := len(w.heads) / 4
			for k := range w.heads {
				if drop == 0 {
					break
				}
				delete(w.heads, k)
				drop--
			}
		}
		for k, h := range w.tailHeads {
			w.heads[k] = h
		}
		clear(w.tailHeads)
		w.tailEvents = 0
	}
	if len(w.batch) > 0 {
		// The record owns copies: the writer reuses its slices for the
		// next transaction while the syncer still answers this one.
		w.committed <- &commitRecord{
			reqs:    append([]*appendReq(nil), w.batch...),
			answers: append([]appendResp(nil), w.answers...),
			written: w.written,
			events:  w.txEvents,
			start:   w.txStart,
		}
		w.syncBusy = true
		clear(w.batch)
		w.batch = w.batch[:0]
	}
	return nil
}

// head is the stream's last revision as the open transaction sees it.
func (w *writer) head(stream string) (streamHead, error) {
	if h, ok := w.pending[stream]; ok {
		return h, nil
	}
	if h, ok := w.tailHeads[stream]; ok {
		return h, nil
	}
	if h, ok := w.heads[stream]; ok {
		return h, nil
	}
	found, err := w.queryRow(w.headOf, w.arg1(stream))
	if err != nil {
		return streamHead{}, errAbort{fmt.Errorf("read stream head: %w", err)}
	}
	if !found {
		return streamHead{}, nil
	}
	// A stream in neither map has no events in the log tail, so
	// stream_index knows its head, or it has no events at all.
	return streamHead{id: w.dest[0].(int64), last: uint64(w.dest[1].(int64)), hash: w.dest[2].(string), exists: true}, nil
}

// apply checks and writes one request inside the open transaction. It
// returns the number of events written. An errAbort means the transaction
// must be rolled back; any other error is the request's own answer.
func (w *writer) apply(r *appendReq) (domain.AppendResult, int, error) {
	if err := r.ctx.Err(); err != nil {
		return domain.AppendResult{}, 0, err
	}
	h, err := w.head(r.stream)
	if err != nil {
		return domain.AppendResult{}, 0, err
	}
	if !r.expected.Allows(h.last, h.exists) {
		// A retry of an append that already happened is answered with the
		// original result, whatever the stream looks like now.
		res, found, err := w.retryResult(r)
		if found || err != nil {
			return res, 0, err
		}
		return domain.AppendResult{}, 0, &domain.ConflictError{Stream: r.stream, Expected: r.expected, Actual: h.last, ActualExists: h.exists}
	}

	// SQLite undoes a failing statement on its own; only a request of
	// several statements (several events, or a new stream's row first)
	// needs a savepoint to be all-or-nothing.
	multi := len(r.events) > 1 || !h.exists
	useGuess := len(r.hashes) == len(r.events) && r.guess == h
	if multi {
		if _, err := w.exec(w.savepoint, nil); err != nil {
			return domain.AppendResult{}, 0, errAbort{err}
		}
	}
	if !h.exists {
		res, err := w.exec(w.insertStream, w.arg1(r.stream))
		if err != nil {
			return domain.AppendResult{}, 0, errAbort{fmt.Errorf("add stream: %w", err)}
		}
		if h.id, err = res.LastInsertId(); err != nil {
			return domain.AppendResult{}, 0, errAbort{err}
		}
	}
	next := h
	written := w.written
	tailLen := len(w.txTail)
	var res domain.AppendResult
	for i := range r.events {
		rev := uint64(0)
		if next.exists {
			rev = next.last + 1
		}
		var hash string
		if useGuess {
			hash = r.hashes[i]
		} else {
			hash = domain.ChainHash(next.hash, r.stream, rev, r.events[i])
		}
		pos, err := w.insertEvent(r, i, rev, next.hash, hash)
		if err != nil {
			w.txTail = w.txTail[:tailLen]
			if multi {
				if _, rerr := w.exec(w.rollTo, nil); rerr != nil {
					return domain.AppendResult{}, 0, errAbort{rerr}
				}
				if _, rerr := w.exec(w.release, nil); rerr != nil {
					return domain.AppendResult{}, 0, errAbort{rerr}
				}
			}
			if !isConstraint(err) {
				return domain.AppendResult{}, 0, errAbort{err}
			}
			// The only unique key an insert can break is the event id: an
			// exact retry or a duplicate.
			res, found, lerr := w.retryResult(r)
			if found || lerr != nil {
				return res, 0, lerr
			}
			return domain.AppendResult{}, 0, errAbort{fmt.Errorf("insert: %w", err)}
		}
		rec := &r.recorded[i]
		rec.Revision = rev
		rec.Position = domain.Position{Commit: uint64(pos), Prepare: uint64(pos)}
		rec.RecordedAt = w.recordedTime
		rec.PrevHash = next.hash
		rec.Hash = hash
		w.txTail = append(w.txTail, tailEvent{stream: r.stream, tailEntry: tailEntry{revision: rev, position: pos, event: rec}})
		next = streamHead{id: h.id, last: rev, hash: hash, exists: true}
		written = pos
		res = domain.AppendResult{LastRevision: rev, Position: domain.Position{Commit: uint64(pos), Prepare: uint64(pos)}}
	}
	if multi {
		if _, err := w.exec(w.release, nil); err != nil {
			return domain.AppendResult{}, 0, errAbort{err}
		}
	}
	w.pending[r.stream] = next
	w.written = written
	// The caller gets the envelopes as stored without reading them back;
	// they are final now (the tail index shares them, read-only).
	res.Recorded = r.recorded
	return res, len(r.events), nil
}

func (w *writer) insertEvent(r *appendReq, i int, rev uint64, prevHash, hash string) (int64, error) {
	vals := r.vals[i*numCols : (i+1)*numCols]
	vals[colStream] = r.stream
	vals[colRevision] = int64(rev)
	vals[colRecordedAt] = w.recordedAt
	vals[colPrevHash] = prevHash
	vals[colHash] = hash
	for j, v := range vals {
		w.args[j] = driver.NamedValue{Ordinal: j + 1, Value: v}
	}
	result, err := w.exec(w.insert, w.args)
	if err != nil {
		return 0, err
	}
	return result.LastInsertId()
}

func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}

// retryResult looks the request's event ids up. found is false when none is
// stored. When all are stored in the request's stream, consecutively and in
// the request's order, the request is a retry and res is what the original
// append returned; when only some are, or elsewhere, err is
// domain.ErrDuplicateEventID.
func (w *writer) retryResult(r *appendReq) (res domain.AppendResult, found bool, err error) {
	var firstRev uint64
	for i, e := range r.events {
		ok, err := w.queryRow(w.lookupByID, w.arg1(r.vals[i*numCols+colID]))
		if err != nil {
			return domain.AppendResult{}, found, errAbort{fmt.Errorf("look up event %s: %w", e.ID, err)}
		}
		if !ok {
			if found {
				return domain.AppendResult{}, true, fmt.Errorf("embedded: append to %s: event %s is stored but %s is not: %w",
					r.stream, r.events[0].ID, e.ID, domain.ErrDuplicateEventID)
			}
			continue
		}
		stream, rev, pos := w.dest[0].(string), uint64(w.dest[1].(int64)), uint64(w.dest[2].(int64))
		switch {
		case stream != r.stream:
			return domain.AppendResult{}, true, fmt.Errorf("embedded: append to %s: event %s is already stored in stream %s: %w",
				r.stream, e.ID, stream, domain.ErrDuplicateEventID)
		case i > 0 && !found:
			return domain.AppendResult{}, true, fmt.Errorf("embedded: append to %s: event %s is stored but %s is not: %w",
				r.stream, e.ID, r.events[0].ID, domain.ErrDuplicateEventID)
		case i == 0:
			firstRev = rev
		case rev != firstRev+uint64(i):
			return domain.AppendResult{}, true, fmt.Errorf("embedded: append to %s: event %s is stored at revision %d, not in the order given: %w",
				r.stream, e.ID, rev, domain.ErrDuplicateEventID)
		}
		found = true
		res = domain.AppendResult{LastRevision: rev, Position: domain.Position{Commit: pos, Prepare: pos}}
	}
	return res, found, nil
}
