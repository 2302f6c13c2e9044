package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/kycengine/kyc/domain"
)

// Guessed head revisions appendSQL understands besides real revisions.
const (
	guessNoStream  = -1
	guessCheckOnly = -2
)

// maxAttempts bounds how often one Append is hashed again because its
// stream moved on between its guess and its batch. Every such miss means
// another append to the stream committed, so reaching the bound takes a
// stream that many writers hammer with ExpectAny.
const maxAttempts = 1000

type appendReq struct {
	ctx    context.Context
	stream string
	events []domain.EventData
	// guess is the stream head the hashes were computed from; its revision
	// is guessNoStream or guessCheckOnly when there is none.
	guessRev  int64
	guessHash string
	prev      []string
	hashes    []string
	resp      chan appendResp // buffered: a committer never waits for a caller
}

type appendResp struct {
	appended   bool
	idsStored  bool
	head       streamHead // the stream's head as the batch saw it
	xid        uint64
	positions  []int64
	recordedAt int64
	// retry: the batch failed in a way that says nothing about this
	// append (another transaction stored one of its ids first); it is
	// tried again.
	retry bool
	err   error
}

// Append implements domain.EventStore. The events are durable when it
// returns nil. When ctx ends while the append is queued or committing, the
// outcome is unknown: retrying with the same event ids is safe.
func (s *Store) Append(ctx context.Context, stream string, expected domain.ExpectedRevision, events []domain.EventData) (domain.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return domain.AppendResult{}, err
	}
	if err := validateAppend(stream, events); err != nil {
		return domain.AppendResult{}, err
	}
	for range maxAttempts {
		guess, _ := s.heads.get(stream)
		req := &appendReq{ctx: ctx, stream: stream, events: events, resp: make(chan appendResp, 1)}
		if expected.Allows(guess.last()) {
			req.guessRev, req.guessHash = guess.rev, guess.hash
			req.prev, req.hashes = chain(guess, stream, events)
		} else {
			// Most likely a conflict; the batch tells the head for sure.
			req.guessRev = guessCheckOnly
		}
		resp, err := s.submit(ctx, req)
		if err != nil {
			return domain.AppendResult{}, err
		}
		if resp.appended {
			return s.appended(req, resp), nil
		}
		if resp.retry {
			continue
		}
		s.heads.set(stream, resp.head)
		if resp.idsStored {
			res, found, err := s.retryResult(ctx, stream, events)
			if err != nil || found {
				return res, err
			}
			// Stored events are never removed, so the lookup finds what
			// the batch saw; were it ever not to, the next attempt asks again.
			continue
		}
		if !expected.Allows(resp.head.last()) {
			last, exists := resp.head.last()
			return domain.AppendResult{}, &domain.ConflictError{Stream: stream, Expected: expected, Actual: last, ActualExists: exists}
		}
		// The guess was stale; hash again on the head just learnt.
	}
	return domain.AppendResult{}, fmt.Errorf("postgres: append to %s: the stream moved on %d times while this append waited; giving up", stream, maxAttempts)
}

// submit queues req for a committer and waits for its answer.
func (s *Store) submit(ctx context.Context, req *appendReq) (appendResp, error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return appendResp{}, fmt.Errorf("postgres: append to %s: %w", req.stream, ErrClosed)
	}
	select {
	case s.reqs <- req:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return appendResp{}, ctx.Err()
	}
	select {
	case r := <-req.resp:
		if r.err != nil {
			return r, r.err
		}
		return r, nil
	case <-ctx.Done():
		return appendResp{}, ctx.Err()
	}
}

// chain returns the previous hash and the hash of each event, appended after
// head.
func chain(head streamHead, stream string, events []domain.EventData) (prev, hashes []string) {
	prev, hashes = make([]string, len(events)), make([]string, len(events))
	h, rev := head.hash, uint64(head.rev+1)
	for i, e := range events {
		prev[i] = h
		h = domain.ChainHash(h, stream, rev, e)
		hashes[i] = h
		rev++
	}
	return prev, hashes
}

// appended builds the result of a written append from what the batch
// returned, so the caller needs no read to see the stored envelopes.
func (s *Store) appended(req *appendReq, resp appendResp) domain.AppendResult {
	recordedAt := time.Unix(0, resp.recordedAt).UTC()
	recorded := make([]domain.RecordedEvent, len(req.events))
	for i, e := range req.events {
		e.OccurredAt = time.Unix(0, e.OccurredAt.UnixNano()).UTC()
		e.Data = bytes.Clone(e.Data)
		if e.Data == nil {
			e.Data = []byte{}
		}
		e.Personal = bytes.Clone(e.Personal)
		if len(e.Personal) == 0 {
			e.Personal = nil
		}
		recorded[i] = domain.RecordedEvent{
			EventData:  e,
			Stream:     req.stream,
			Revision:   uint64(req.guessRev + 1 + int64(i)),
			Position:   domain.Position{Commit: resp.xid, Prepare: uint64(resp.positions[i])},
			RecordedAt: recordedAt,
			PrevHash:   req.prev[i],
			Hash:       req.hashes[i],
		}
	}
	last := recorded[len(recorded)-1]
	s.heads.set(req.stream, streamHead{rev: int64(last.Revision), hash: last.Hash})
	return domain.AppendResult{LastRevision: last.Revision, Position: last.Position, Recorded: recorded}
}

const lookupSQL = `SELECT id, stream, revision, tx_id, position FROM kyc_events WHERE id = ANY ($1)`

// retryResult looks the events' ids up after a batch said some are stored.
// found is false when none is. When all are stored in stream, consecutively
// and in the order given, the append is a retry and res is what the original
// append returned; otherwise err is domain.ErrDuplicateEventID.
func (s *Store) retryResult(ctx context.Context, stream string, events []domain.EventData) (res domain.AppendResult, found bool, err error) {
	ids := make([]uuid.UUID, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	type stored struct {
		stream   string
		revision int64
		pos      domain.Position
	}
	byID := make(map[uuid.UUID]stored, len(events))
	rows, err := s.pool.Query(ctx, lookupSQL, ids)
	if err != nil {
		return res, false, fmt.Errorf("postgres: append to %s: look up event ids: %w", stream, classify(ctx, err))
	}
	for rows.Next() {
		var (
			id  uuid.UUID
			st  stored
			pos int64
		)
		if err := rows.Scan(&id, &st.stream, &st.revision, &st.pos.Commit, &pos); err != nil {
			rows.Close()
			return res, false, fmt.Errorf("postgres: append to %s: look up event ids: %w", stream, err)
		}
		st.pos.Prepare = uint64(pos)
		byID[id] = st
	}
	if err := rows.Err(); err != nil {
		return res, false, fmt.Errorf("postgres: append to %s: look up event ids: %w", stream, classify(ctx, err))
	}
	if len(byID) == 0 {
		return res, false, nil
	}
	var first int64
	for i, e := range events {
		st, ok := byID[e.ID]
		switch {
		case !ok:
			return res, true, fmt.Errorf("postgres: append to %s: event %s is not stored but others of the append are: %w",
				stream, e.ID, domain.ErrDuplicateEventID)
		case st.stream != stream:
			return res, true, fmt.Errorf("postgres: append to %s: event %s is already stored in stream %s: %w",
				stream, e.ID, st.stream, domain.ErrDuplicateEventID)
		case i == 0:
			first = st.revision
		case st.revision != first+int64(i):
			return res, true, fmt.Errorf("postgres: append to %s: event %s is stored at revision %d, not in the order given: %w",
				stream, e.ID, st.revision, domain.ErrDuplicateEventID)
		}
		res = domain.AppendResult{LastRevision: uint64(st.revision), Position: st.pos}
	}
	return res, true, nil
}

// Unix nanoseconds hold times between these; OccurredAt is stored that way.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

func validateAppend(stream string, events []domain.EventData) error {
	if err := domain.CheckAppend(stream, events); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := checkText("stream name", stream); err != nil {
		return fmt.Errorf("postgres: append: %w", err)
	}
	for _, e := range events {
		if e.OccurredAt.Before(minTime) || e.OccurredAt.After(maxTime) {
			return fmt.Errorf("postgres: append to %s: event %s occurred at %s, outside the years 1678-2262", stream, e.ID, e.OccurredAt)
		}
		// A text PostgreSQL refuses would fail the whole batch the append
		// travels in; refusing it here keeps the failure to its own append.
		for _, f := range [...]struct{ name, v string }{
			{"type", e.Type}, {"actor kind", string(e.Actor.Kind)}, {"actor id", e.Actor.ID},
			{"actor company", e.Actor.Company}, {"correlation id", e.CorrelationID},
			{"causation id", e.CausationID}, {"idempotency key", e.IdempotencyKey},
		} {
			if err := checkText(f.name, f.v); err != nil {
				return fmt.Errorf("postgres: append to %s: event %s: %w", stream, e.ID, err)
			}
		}
	}
	return nil
}

func checkText(name, v string) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s is not valid UTF-8", name)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%s contains a NUL character", name)
	}
	return nil
}

// commitLoop is one committer: it takes the first queued append, whatever
// else is queued behind it, and writes them all in one transaction. A
// batch holds one append per stream; a second one waits for the next batch,
// since it could only follow the first if that one's head were known.
//
// While another committer's batch is in flight, a batch smaller than that
// one waits a little (at most maxLinger) to grow to its size. Without the
// wait, the appends that one batch answers come back one by one and the
// first few of them leave at once in a batch of their own, so under load
// batches stayed small and each paid a transaction's fixed cost (about
// 280µs of server time against 20µs an event) for few events. The wait
// costs nothing a caller would have had: the server is busy with the
// other batch meanwhile. It only starts when the batch before carried more
// than one append, so a lone writer, or a few, never wait. Measured with 64
// writers: 25.6 appends a transaction instead of 19, 12-15% more events a
// second and a lower p50; with 4 to 32 writers, 11-38% more.
func (s *Store) commitLoop() {
	var (
		batch, held, next []*appendReq
		streams           = make(map[string]bool)
		open              = true
		params            paramBuffer
	)
	take := func(r *appendReq) {
		if streams[r.stream] || len(batch) >= s.cfg.maxBatch {
			next = append(next, r)
			return
		}
		streams[r.stream] = true
		batch = append(batch, r)
	}
	// receive takes the next queued append; when none is queued it waits
	// until wait fires (nil: not at all). It reports whether one came.
	receive := func(wait <-chan time.Time) bool {
		var r *appendReq
		select {
		case r, open = <-s.reqs:
		default:
			if wait == nil {
				return false
			}
			select {
			case r, open = <-s.reqs:
			case <-wait:
				return false
			}
		}
		if open {
			take(r)
		}
		return open
	}
	for open || len(held) > 0 {
		batch, next = batch[:0], next[:0]
		clear(streams)
		for _, r := range held {
			take(r)
		}
		if len(batch) == 0 {
			r, ok := <-s.reqs
			if !ok {
				return
			}
			take(r)
		}
		for open && len(batch) < s.cfg.maxBatch && receive(nil) {
		}
		if want := s.pacing.target(len(batch)); open && want > 0 && s.cfg.maxLinger > 0 {
			timer := time.NewTimer(s.cfg.maxLinger)
			for len(batch) < want && receive(timer.C) {
			}
			timer.Stop()
		}
		s.pacing.started(len(batch))
		s.commitBatch(&params, batch)
		s.pacing.ended()
		clear(batch)
		held = append(held[:0], next...)
	}
}

// batchPacing is what the committers tell each other about their batches.
type batchPacing struct {
	inFlight atomic.Int32 // batches being written
	lastSize atomic.Int32 // appends the batch started last carried
}

func (p *batchPacing) started(size int) {
	p.inFlight.Add(1)
	p.lastSize.Store(int32(size))
}

func (p *batchPacing) ended() { p.inFlight.Add(-1) }

// target is the size a batch of size appends should wait to reach before
// it is written, or 0 when it should go at once: when no other batch is in
// flight (the server would wait for it), or when the batch before carried
// one append (appends are not arriving faster than batches commit).
func (p *batchPacing) target(size int) int {
	want := int(p.lastSize.Load())
	if want <= 1 || size >= want || p.inFlight.Load() == 0 {
		return 0
	}
	return want
}

// commitBatch writes a batch and answers its appends. A batch the server
// refuses as a whole committed nothing, so it is retried after a deadlock,
// and otherwise split so that only the append at fault fails.
func (s *Store) commitBatch(params *paramBuffer, batch []*appendReq) {
	live := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.resp <- appendResp{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.runBatch(params, live); err == nil {
			return
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || (pgErr.Code != "40P01" && pgErr.Code != "40001") {
			break
		}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(live) > 1 {
		for _, r := range live {
			s.commitBatch(params, []*appendReq{r})
		}
		return
	}
	if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "kyc_events_id_key" {
		// Stored by a transaction that committed while this one ran: the
		// next attempt finds the id and answers as a retry or a duplicate.
		live[0].resp <- appendResp{retry: true}
		return
	}
	// A lost connection leaves the outcome unknown; the caller may retry
	// with the same ids.
	for _, r := range live {
		r.resp <- appendResp{err: fmt.Errorf("postgres: append to %s: %w", r.stream, classify(context.Background(), err))}
	}
}

// batchArgs are the arguments of appendSQL.
type batchArgs struct {
	streams, guessHashes, lastHashes                               []string
	guessRevs                                                      []int64
	counts                                                         []int32
	eventAppends, eventOffsets                                     []int32
	eventStreams                                                   []string
	ids                                                            [][16]byte
	types, actorKinds, actorIDs, actorCompanies, corrIDs, causeIDs []string
	idemKeys, prevHashes, hashes                                   []string
	schemaVersions, occurredAt                                     []int64
	data, personal                                                 [][]byte
}

func buildArgs(batch []*appendReq) *batchArgs {
	n := 0
	for _, r := range batch {
		n += len(r.events)
	}
	a := &batchArgs{
		streams: make([]string, len(batch)), guessHashes: make([]string, len(batch)), guessRevs: make([]int64, len(batch)),
		counts: make([]int32, len(batch)), lastHashes: make([]string, len(batch)),
		eventAppends: make([]int32, 0, n), eventOffsets: make([]int32, 0, n), eventStreams: make([]string, 0, n),
		ids: make([][16]byte, 0, n), types: make([]string, 0, n), actorKinds: make([]string, 0, n),
		actorIDs: make([]string, 0, n), actorCompanies: make([]string, 0, n), corrIDs: make([]string, 0, n),
		causeIDs: make([]string, 0, n), idemKeys: make([]string, 0, n), prevHashes: make([]string, 0, n),
		hashes: make([]string, 0, n), schemaVersions: make([]int64, 0, n), occurredAt: make([]int64, 0, n),
		data: make([][]byte, 0, n), personal: make([][]byte, 0, n),
	}
	for i, r := range batch {
		a.streams[i], a.guessRevs[i], a.guessHashes[i] = r.stream, r.guessRev, r.guessHash
		a.counts[i] = int32(len(r.events))
		if r.hashes != nil {
			a.lastHashes[i] = r.hashes[len(r.hashes)-1]
		}
		for j, e := range r.events {
			prev, hash := "", ""
			if r.hashes != nil {
				prev, hash = r.prev[j], r.hashes[j]
			}
			data := e.Data
			if data == nil {
				data = []byte{} // NOT NULL; an empty payload stays empty
			}
			a.eventAppends = append(a.eventAppends, int32(i+1))
			a.eventOffsets = append(a.eventOffsets, int32(j))
			a.eventStreams = append(a.eventStreams, r.stream)
			a.ids = append(a.ids, e.ID)
			a.types = append(a.types, e.Type)
			a.schemaVersions = append(a.schemaVersions, int64(e.SchemaVersion))
			a.occurredAt = append(a.occurredAt, e.OccurredAt.UnixNano())
			a.actorKinds = append(a.actorKinds, string(e.Actor.Kind))
			a.actorIDs = append(a.actorIDs, e.Actor.ID)
			a.actorCompanies = append(a.actorCompanies, e.Actor.Company)
			a.corrIDs = append(a.corrIDs, e.CorrelationID)
			a.causeIDs = append(a.causeIDs, e.CausationID)
			a.idemKeys = append(a.idemKeys, e.IdempotencyKey)
			a.data = append(a.data, data)
			a.personal = append(a.personal, e.Personal)
			a.prevHashes = append(a.prevHashes, prev)
			a.hashes = append(a.hashes, hash)
		}
	}
	return a
}

// appendSQL writes a batch of appends in one statement and one round trip.
// Its arguments come in two shapes: one element per append ($1-$5: stream,
// guessed head revision and hash, number of events, hash of the last event),
// at most one append per stream; and one per event ($6-$22: the index of its
// append, its place in it, then the envelope), each event naming its append
// by index (1-based). $23 is RecordedAt for the whole batch.
//
// The caller has computed each event's chain hash on a guess of its stream's
// head (-1: no stream; -2: only tell me the head). An append is written only
// when none of its ids is stored and the guess is the head: the head moves
// from the guess to the append's last event in one UPDATE (or the stream's
// row is inserted), which locks the row, waits for a transaction holding it
// and then checks the guess against the head that transaction left. Rows are
// locked in name order, so two batches cannot deadlock on them. The appends
// that are not written learn their stream's head and whether an id of theirs
// is stored (an exact retry, or a duplicate): none of that is an error, so
// one append cannot fail the others of its batch. An id that a concurrent
// transaction stores first, or that two appends of one batch share, is: the
// unique index refuses it and commitBatch runs the appends again one by one.
//
// Events go in in event order, so positions grow with revisions. The one
// row returned holds per append whether it was written, the appends with a
// stored id, per append its stream's head as of the statement's start (read
// for those not written), the transaction id, and the stream, revision and
// position of every event written. woke makes the commit notify listeners.
const appendSQL = `
WITH r AS MATERIALIZED (
	SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::integer[], $5::text[])
		WITH ORDINALITY AS r(name, guess, guess_hash, count, last_hash, n)),
e AS MATERIALIZED (
	SELECT * FROM unnest($6::integer[], $7::integer[], $8::text[], $9::uuid[], $10::text[], $11::bigint[], $12::bigint[],
			$13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::bytea[], $20::bytea[],
			$21::text[], $22::text[])
		WITH ORDINALITY AS e(app, off, stream, id, type, sv, occ, ak, ai, ac, corr, cause, idem, data, personal, prev, hash, n)),
stored AS MATERIALIZED (
	SELECT DISTINCT e.app FROM e WHERE EXISTS (SELECT FROM kyc_events k WHERE k.id = e.id)),
moved AS (
	UPDATE kyc_streams s SET last_revision = r.guess + r.count, last_hash = r.last_hash
	  FROM (SELECT r.* FROM r WHERE r.guess >= 0 AND r.n NOT IN (SELECT app FROM stored) ORDER BY r.name) r
	 WHERE s.name = r.name AND s.last_revision = r.guess AND s.last_hash = r.guess_hash
	RETURNING r.n),
created AS (
	INSERT INTO kyc_streams (name, last_revision, last_hash)
	SELECT r.name, r.guess + r.count, r.last_hash FROM r
	 WHERE r.guess = -1 AND r.n NOT IN (SELECT app FROM stored)
	 ORDER BY r.name
	ON CONFLICT (name) DO NOTHING
	RETURNING name),
ok AS MATERIALIZED (
	SELECT ARRAY(SELECT m.n FROM moved m
		UNION ALL
		SELECT r.n FROM r JOIN created c ON c.name = r.name) AS apps),
ins AS (
	INSERT INTO kyc_events (id, stream, revision, type, schema_version, occurred_at, recorded_at,
		actor_kind, actor_id, actor_company, correlation_id, causation_id, idempotency_key, data, personal, prev_hash, hash)
	SELECT e.id, e.stream, ($2::bigint[])[e.app] + 1 + e.off, e.type, e.sv, e.occ, $23::bigint,
		e.ak, e.ai, e.ac, e.corr, e.cause, nullif(e.idem, ''), e.data, nullif(e.personal, ''::bytea), e.prev, e.hash
	  FROM e
	 WHERE e.app = ANY ((SELECT apps FROM ok)::integer[])
	 ORDER BY e.n
	RETURNING stream, revision, position),
woke AS (
	SELECT pg_notify('kyc_events', '') FROM (SELECT FROM ins LIMIT 1) x),
heads AS (
	SELECT array_agg(coalesce(s.last_revision, -1) ORDER BY r.n) AS revisions,
	       array_agg(coalesce(s.last_hash, '') ORDER BY r.n) AS hashes
	  FROM r LEFT JOIN LATERAL (
		SELECT s.last_revision, s.last_hash FROM kyc_streams s
		 WHERE s.name = r.name AND r.n <> ALL ((SELECT apps FROM ok)::bigint[])) s ON true)
SELECT (SELECT array_agg(r.n = ANY ((SELECT apps FROM ok)::bigint[]) ORDER BY r.n) FROM r),
	(SELECT array_agg(app) FROM stored),
	heads.revisions, heads.hashes,
	CASE WHEN EXISTS (SELECT FROM ins) THEN pg_current_xact_id() END,
	(SELECT array_agg(stream) FROM ins), (SELECT array_agg(revision) FROM ins), (SELECT array_agg(position) FROM ins),
	(SELECT count(*) FROM woke)
  FROM heads`

// Names under which each committer's connection prepares the statements of
// a batch; pgx remembers them per connection.
const (
	appendLockStatement = "kyc_append_lock"
	appendStatement     = "kyc_append"
)

// runBatch writes the batch with appendSQL and answers every append of it
// once the statement has committed.
func (s *Store) runBatch(params *paramBuffer, batch []*appendReq) error {
	// The batch serves many callers; none of them may cancel it for the
	// others.
	ctx := context.Background()
	start := time.Now()
	a := buildArgs(batch)
	recordedAt := s.cfg.clock().UnixNano()
	args := []any{a.streams, a.guessRevs, a.guessHashes, a.counts, a.lastHashes, a.eventAppends, a.eventOffsets, a.eventStreams,
		a.ids, a.types, a.schemaVersions, a.occurredAt, a.actorKinds, a.actorIDs, a.actorCompanies,
		a.corrIDs, a.causeIDs, a.idemKeys, a.data, a.personal, a.prevHashes, a.hashes, recordedAt}

	var (
		conn *pgx.Conn
		tx   pgx.Tx
	)
	if s.cfg.beforeCommit != nil {
		// A test holds the commit back: the batch runs in a transaction.
		var err error
		if tx, err = s.appendPool.Begin(ctx); err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(ctx) }()
		conn = tx.Conn()
	} else {
		pooled, err := s.appendPool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer pooled.Release()
		conn = pooled.Conn()
	}
	out, err := sendAppend(ctx, conn, params, args)
	if err != nil {
		return err
	}
	resps, err := out.answers(batch, recordedAt)
	if err != nil {
		return fmt.Errorf("append statement: %w", err)
	}
	if tx != nil {
		s.cfg.beforeCommit(ctx, slices.Clone(a.streams))
		if err := tx.Commit(ctx); err != nil {
			return err
		}
	}
	events := 0
	for i, r := range resps {
		if r.appended {
			events += len(batch[i].events)
		}
	}
	if events > 0 {
		// This process's subscriptions need not wait for the notification
		// to come back from the server.
		s.notifier.Broadcast()
	}
	for i, r := range batch {
		r.resp <- resps[i]
	}
	if s.cfg.observer != nil {
		s.cfg.observer.BatchCommitted(len(batch), events, time.Since(start))
	}
	return nil
}

// sendAppend runs appendLockSQL and appendSQL in one pipeline: one round
// trip and one implicit transaction (the append announces itself to readers
// before its first write, see the horizon), so in autocommit the batch has
// committed when it returns without error.
//
// It goes below pgx's batches to encode the arguments into params, which
// the committer keeps from batch to batch: pgx encodes into a buffer it
// shrinks after every statement, and a batch's arrays (tens of kilobytes)
// regrew it each time, a tenth of the process's processor time under many
// writers.
func sendAppend(ctx context.Context, conn *pgx.Conn, params *paramBuffer, args []any) (batchResult, error) {
	var out batchResult
	lock, err := conn.Prepare(ctx, appendLockStatement, appendLockSQL)
	if err != nil {
		return out, err
	}
	stmt, err := conn.Prepare(ctx, appendStatement, appendSQL)
	if err != nil {
		return out, err
	}
	if err := params.encode(conn.TypeMap(), stmt, args); err != nil {
		return out, fmt.Errorf("append statement: %w", err)
	}
	p := conn.PgConn().StartPipeline(ctx)
	p.SendQueryStatement(lock, nil, nil, nil)
	p.SendQueryStatement(stmt, params.values, params.formats, params.resultFormats)
	err = p.Sync()
	found := false
	if err == nil {
		err = readResult(p, nil, nil)
	}
	if err == nil {
		err = readResult(p, conn.TypeMap(), func(rows pgx.Rows) error {
			for rows.Next() {
				found = true
				var notified int64
				if err := rows.Scan(&out.appended, &out.stored, &out.heads, &out.hashes, &out.xid,
					&out.streams, &out.revisions, &out.positions, &notified); err != nil {
					return err
				}
			}
			return rows.Err()
		})
	}
	// Closing the pipeline reads up to the end of the implicit transaction.
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	if err == nil && !found {
		err = errors.New("append statement returned no row")
	}
	return out, err
}

// readResult reads the pipeline's next statement result, its rows with
// scan when given.
func readResult(p *pgconn.Pipeline, typeMap *pgtype.Map, scan func(pgx.Rows) error) error {
	res, err := p.GetResults()
	if err != nil {
		return err
	}
	rr, ok := res.(*pgconn.ResultReader)
	if !ok {
		return fmt.Errorf("append pipeline: expected a statement's result, got %T", res)
	}
	if scan == nil {
		_, err := rr.Close()
		return err
	}
	rows := pgx.RowsFromResultReader(typeMap, rr)
	err = scan(rows)
	rows.Close()
	if err == nil {
		err = rows.Err()
	}
	return err
}

// paramBuffer holds a statement's encoded arguments; its memory is kept
// from one batch to the next.
type paramBuffer struct {
	buf                    []byte
	values                 [][]byte
	formats, resultFormats []int16
}

// encode encodes args for stmt in the formats pgx would choose.
func (b *paramBuffer) encode(m *pgtype.Map, stmt *pgconn.StatementDescription, args []any) error {
	if len(args) != len(stmt.ParamOIDs) {
		return fmt.Errorf("%d arguments for %d parameters", len(args), len(stmt.ParamOIDs))
	}
	b.buf, b.values, b.formats, b.resultFormats = b.buf[:0], b.values[:0], b.formats[:0], b.resultFormats[:0]
	for i, arg := range args {
		oid := stmt.ParamOIDs[i]
		format := m.FormatCodeForOID(oid)
		start := len(b.buf)
		encoded, err := m.Encode(oid, format, arg, b.buf)
		if err != nil {
			return fmt.Errorf("parameter %d: %w", i+1, err)
		}
		var value []byte // NULL: Encode appended nothing and returned no buffer
		if encoded != nil {
			// When the buffer grew, the values before this one still point
			// into the old array, whose bytes stay as they were.
			b.buf, value = encoded, encoded[start:]
		}
		b.values = append(b.values, value)
		b.formats = append(b.formats, format)
	}
	for _, f := range stmt.Fields {
		b.resultFormats = append(b.resultFormats, m.FormatCodeForOID(f.DataTypeOID))
	}
	return nil
}

// batchResult is the row appendSQL returns.
type batchResult struct {
	appended  []bool
	stored    []int32 // appends (1-based) with an id that is stored already
	heads     []int64 // per append, its stream's head after the batch; nil when all were written
	hashes    []string
	xid       *uint64
	streams   []string // per event written
	revisions []int64
	positions []int64
}

// answers turns the batch's row into each append's answer.
func (b *batchResult) answers(batch []*appendReq, recordedAt int64) ([]appendResp, error) {
	if len(b.appended) != len(batch) || len(b.streams) != len(b.revisions) || len(b.streams) != len(b.positions) ||
		(b.heads != nil && (len(b.heads) != len(batch) || len(b.hashes) != len(batch))) {
		return nil, fmt.Errorf("answer does not match a batch of %d appends", len(batch))
	}
	type key struct {
		stream   string
		revision int64
	}
	positions := make(map[key]int64, len(b.positions))
	for i, st := range b.streams {
		positions[key{st, b.revisions[i]}] = b.positions[i]
	}
	resps := make([]appendResp, len(batch))
	for i, r := range batch {
		resp := &resps[i]
		if !b.appended[i] {
			if b.heads == nil {
				return nil, fmt.Errorf("no head for append %d, which was not written", i+1)
			}
			resp.head = streamHead{rev: b.heads[i], hash: b.hashes[i]}
			resp.idsStored = slices.Contains(b.stored, int32(i+1))
			continue
		}
		if b.xid == nil {
			return nil, fmt.Errorf("append %d written without a transaction id", i+1)
		}
		resp.appended, resp.xid, resp.recordedAt = true, *b.xid, recordedAt
		resp.positions = make([]int64, len(r.events))
		for j := range r.events {
			pos, ok := positions[key{r.stream, r.guessRev + 1 + int64(j)}]
			if !ok {
				return nil, fmt.Errorf("no position for event %d of append %d", j, i+1)
			}
			resp.positions[j] = pos
		}
	}
	return resps, nil
}

// streamHead is a stream's last revision (-1: no events) and that event's
// chain hash.
type streamHead struct {
	rev  int64
	hash string
}

func (h streamHead) last() (uint64, bool) {
	if h.rev < 0 {
		return 0, false
	}
	return uint64(h.rev), true
}

// headCache remembers the stream heads this process last saw, so an
// append's hashes can usually be computed before its batch runs. A wrong
// entry costs a round trip, never correctness: the batch checks the guess
// against the locked head.
type headCache struct {
	mu sync.Mutex
	m  map[string]streamHead
}

// maxCachedHeads bounds the cache; when it is full it starts over.
const maxCachedHeads = 1 << 16

func (c *headCache) get(stream string) (streamHead, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.m[stream]
	if !ok {
		return streamHead{rev: guessNoStream}, false
	}
	return h, true
}

// set records the head a batch found under the stream's lock. It may be
// older than what the cache holds when batches overlap; one stale guess is
// the price, and in exchange a cache that is wrong (its database was
// replaced under a running process) heals with the first answer.
func (c *headCache) set(stream string, h streamHead) { c.put(stream, h, false) }

// advance records a head a read saw, unless the cache knows a later one.
func (c *headCache) advance(stream string, h streamHead) { c.put(stream, h, true) }

func (c *headCache) put(stream string, h streamHead, forwardOnly bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.m[stream]
	if forwardOnly && ok && old.rev >= h.rev {
		return
	}
	if h.rev < 0 {
		delete(c.m, stream)
		return
	}
	if c.m == nil || len(c.m) >= maxCachedHeads {
		c.m = make(map[string]streamHead)
	}
	c.m[stream] = h
}
