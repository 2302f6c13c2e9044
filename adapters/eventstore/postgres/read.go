package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kycengine/kyc/adapters/eventstore/catchup"
	"github.com/kycengine/kyc/domain"
)

const eventColumns = `tx_id, position, id, stream, revision, type, schema_version, occurred_at, recorded_at,
	actor_kind, actor_id, actor_company, correlation_id, causation_id, idempotency_key, data, personal, prev_hash, hash`

// The horizon is where readers of the log stop: below it, every append
// transaction has ended, so no event can appear there later. It is not the
// server's oldest running transaction (pg_snapshot_xmin): that would make
// every reader wait for any long transaction anywhere on the server, the
// read models' own commits included. Appends instead announce themselves:
// each takes the shared advisory lock appendLockSQL before its first write,
// so before it has a transaction id, and holds it to its end.
//
// The horizon is computed by kyc_events_horizon() (migration 00003) from its
// snapshot: xmax, and the transactions in progress (xip). An append whose id
// is below xmax took the lock before it got that id, and the id is in xip
// unless it had ended. With no id in xip the horizon is xmax, read without
// looking further. Otherwise the function reads the lock table (after the
// snapshot): an id in xip held by a lock holder is an append and counts; an
// id held by any other backend is not and is ignored; an id whose
// transaction lock is not there counts too, since it is either in the
// instant between getting its id and locking it, or has just ended (then
// counting it only delays a reader). The horizon is the smallest id that
// counts, else xmax. The query that reads below it must take its snapshot
// after the function's, so readers send horizonSQL and their query in one
// pipeline: one round trip, one implicit transaction, the horizon passed on
// in the transaction-local setting kyc.horizon. pg_locks shows 32-bit ids;
// they are matched to the snapshot's by their low 32 bits (ids in progress
// are never 2^31 apart).
const (
	appendLockSQL = `SELECT pg_advisory_xact_lock_shared(1803116385, 1)`
	horizonSQL    = `SELECT kyc_events_horizon()`
	horizon       = `current_setting('kyc.horizon')::xid8`
)

// LIMIT NULL is PostgreSQL's "no limit".
const (
	readAllSQL = `SELECT ` + eventColumns + ` FROM kyc_events
		WHERE (tx_id, position) > ($1, $2) AND tx_id < ` + horizon + `
		ORDER BY tx_id, position LIMIT $3`
	// heldBackSQL tells whether committed events wait at or above the
	// horizon, in a later snapshot than the page read with it. A page that
	// stopped short of its limit read every event below the horizon, so
	// these are the ones it could not see. It stops at the first such event,
	// where counting the events after the page's position visited every one
	// the page had just read again. Should the horizon ever sit below events
	// already read (it can fall back for an instant when a transaction ends
	// while it is computed), the answer is yes and the store reads once
	// more: a read lost, never an event.
	heldBackSQL = `SELECT EXISTS (SELECT FROM kyc_events WHERE tx_id >= ` + horizon + `)`
	forwardsSQL = `SELECT ` + eventColumns + ` FROM kyc_events
		WHERE stream = $1 AND revision >= $2 ORDER BY revision LIMIT $3`
	backwardsSQL = `SELECT ` + eventColumns + ` FROM kyc_events
		WHERE stream = $1 AND revision <= $2 ORDER BY revision DESC LIMIT $3`
	existsSQL    = `SELECT EXISTS (SELECT FROM kyc_events WHERE stream = $1)`
	byIdemKeySQL = `SELECT ` + eventColumns + ` FROM kyc_events WHERE idempotency_key = $1 ORDER BY tx_id, position`
	countSQL     = `SELECT count(*) FROM kyc_events WHERE (tx_id, position) > ($1, $2) AND tx_id < ` + horizon
	tailSQL      = `SELECT tx_id, position FROM kyc_events WHERE tx_id < ` + horizon + ` ORDER BY tx_id DESC, position DESC LIMIT 1`
)

func sqlLimit(limit int) *int64 {
	if limit <= 0 {
		return nil
	}
	n := int64(limit)
	return &n
}

// clampRevision maps a revision onto PostgreSQL's signed integers; revisions
// never come near the top, so StreamEnd and its neighbours mean "the end".
func clampRevision(rev uint64) int64 {
	if rev > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(rev)
}

// ReadStream implements domain.EventStore.
func (s *Store) ReadStream(ctx context.Context, stream string, dir domain.Direction, from uint64, limit int) ([]domain.RecordedEvent, error) {
	if s.isClosed() {
		return nil, fmt.Errorf("postgres: read stream %s: %w", stream, ErrClosed)
	}
	query := forwardsSQL
	if dir == domain.Backwards {
		query = backwardsSQL
	}
	events, err := s.query(ctx, query, stream, clampRevision(from), sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("postgres: read stream %s: %w", stream, classify(ctx, err))
	}
	if len(events) == 0 {
		var exists bool
		if err := s.pool.QueryRow(ctx, existsSQL, stream).Scan(&exists); err != nil {
			return nil, fmt.Errorf("postgres: read stream %s: %w", stream, classify(ctx, err))
		}
		if !exists {
			return nil, fmt.Errorf("postgres: read stream %s: %w", stream, domain.ErrStreamNotFound)
		}
		return events, nil
	}
	// A read that reached the stream's end tells the head, which the next
	// append to the stream can hash on without asking.
	switch {
	case dir == domain.Forwards && (limit <= 0 || len(events) < limit):
		last := events[len(events)-1]
		s.heads.advance(stream, streamHead{rev: int64(last.Revision), hash: last.Hash})
	case dir == domain.Backwards && from == domain.StreamEnd:
		s.heads.advance(stream, streamHead{rev: int64(events[0].Revision), hash: events[0].Hash})
	}
	return events, nil
}

// ReadAll implements domain.EventStore. It reads up to the horizon (see the
// package doc), so an event that committed a moment ago may show up only
// once older transactions still running have ended. A limit <= 0 reads to
// the horizon.
func (s *Store) ReadAll(ctx context.Context, after domain.Position, limit int) ([]domain.RecordedEvent, error) {
	if s.isClosed() {
		return nil, fmt.Errorf("postgres: read all after %s: %w", after, ErrClosed)
	}
	var b pgx.Batch
	b.Queue(horizonSQL)
	b.Queue(readAllSQL, after.Commit, clampRevision(after.Prepare), sqlLimit(limit))
	br := s.pool.SendBatch(ctx, &b)
	_, err := br.Exec()
	var events []domain.RecordedEvent
	if err == nil {
		events, err = s.scanEvents(br.Query())
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: read all after %s: %w", after, classify(ctx, err))
	}
	return events, nil
}

// belowHorizon runs one single-row query that reads below the horizon.
func (s *Store) belowHorizon(ctx context.Context, sql string, args []any, dest ...any) error {
	var b pgx.Batch
	b.Queue(horizonSQL)
	b.Queue(sql, args...)
	br := s.pool.SendBatch(ctx, &b)
	_, err := br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(dest...)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

// CountAfter counts the events ReadAll would return after position after.
// It is an index-only count, cheap when after is near the end of the log.
func (s *Store) CountAfter(ctx context.Context, after domain.Position) (int64, error) {
	if s.isClosed() {
		return 0, fmt.Errorf("postgres: count after %s: %w", after, ErrClosed)
	}
	var n int64
	if err := s.belowHorizon(ctx, countSQL, []any{after.Commit, clampRevision(after.Prepare)}, &n); err != nil {
		return 0, fmt.Errorf("postgres: count after %s: %w", after, classify(ctx, err))
	}
	return n, nil
}

// Tail is the position of the last event below the horizon (domain.Start
// when there is none): where a follower of new events only starts.
func (s *Store) Tail(ctx context.Context) (domain.Position, error) {
	if s.isClosed() {
		return domain.Start, fmt.Errorf("postgres: tail: %w", ErrClosed)
	}
	var (
		p   domain.Position
		pos int64
	)
	err := s.belowHorizon(ctx, tailSQL, nil, &p.Commit, &pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Start, nil
	}
	if err != nil {
		return domain.Start, fmt.Errorf("postgres: tail: %w", classify(ctx, err))
	}
	p.Prepare = uint64(pos)
	return p, nil
}

// FindByIdempotencyKey returns the committed events that carry key, in
// global order, so a retried command can be answered with its first result.
func (s *Store) FindByIdempotencyKey(ctx context.Context, key string) ([]domain.RecordedEvent, error) {
	if key == "" {
		return nil, errors.New("postgres: find by idempotency key: empty key")
	}
	if s.isClosed() {
		return nil, fmt.Errorf("postgres: find by idempotency key: %w", ErrClosed)
	}
	events, err := s.query(ctx, byIdemKeySQL, key)
	if err != nil {
		return nil, fmt.Errorf("postgres: find by idempotency key: %w", classify(ctx, err))
	}
	return events, nil
}

// SubscribeAll implements domain.EventStore. It also returns, with ErrClosed,
// when the store is closed.
func (s *Store) SubscribeAll(ctx context.Context, after domain.Position, handle func(context.Context, domain.RecordedEvent) error) error {
	if handle == nil {
		return errors.New("postgres: subscribe: nil handler")
	}
	if s.isClosed() {
		return fmt.Errorf("postgres: subscribe: %w", ErrClosed)
	}
	s.startListener()
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.closing, cancel)
	defer stop()
	src := catchup.Source{
		Read:         s.readForSubscription,
		Notify:       s.notifier.Wait,
		PageSize:     subscriptionPage,
		PollInterval: s.cfg.pollInterval,
		// Each read costs the server about half a millisecond before its
		// first event; see subscriptionReadInterval.
		MinReadInterval: subscriptionReadInterval,
	}
	err := catchup.Run(subCtx, src, after, handle)
	if err != nil && ctx.Err() == nil && s.closing.Err() != nil && errors.Is(err, context.Canceled) {
		return fmt.Errorf("postgres: subscribe: %w", ErrClosed)
	}
	return err
}

// readForSubscription reads a page like ReadAll and, in the same round trip,
// asks whether committed events wait above the horizon. When the page is
// short and some do, the horizon held them back (or they committed after the
// page was read), and the store wakes its subscriptions again shortly rather
// than at the next poll: the transaction they wait for may not be an append,
// or an append that wrote nothing, and then nothing notifies.
func (s *Store) readForSubscription(ctx context.Context, after domain.Position, limit int) ([]domain.RecordedEvent, error) {
	if s.isClosed() {
		return nil, ErrClosed
	}
	var b pgx.Batch
	b.Queue(horizonSQL)
	b.Queue(readAllSQL, after.Commit, clampRevision(after.Prepare), sqlLimit(limit))
	b.Queue(heldBackSQL)
	br := s.pool.SendBatch(ctx, &b)
	_, err := br.Exec()
	var events []domain.RecordedEvent
	if err == nil {
		events, err = s.scanEvents(br.Query())
	}
	var heldBack bool
	if err == nil {
		err = br.QueryRow().Scan(&heldBack)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: read all after %s: %w", after, classify(ctx, err))
	}
	if len(events) < limit {
		if heldBack {
			s.recheck.soon()
		} else {
			s.recheck.caughtUp()
		}
	}
	return events, nil
}

func (s *Store) query(ctx context.Context, sql string, args ...any) ([]domain.RecordedEvent, error) {
	return s.scanEvents(s.pool.Query(ctx, sql, args...))
}

func (s *Store) scanEvents(rows pgx.Rows, err error) ([]domain.RecordedEvent, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []domain.RecordedEvent
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

func scanEvent(rows pgx.Rows) (domain.RecordedEvent, error) {
	var (
		e                      domain.RecordedEvent
		pos, rev, occ, rec, sv int64
		actorKind              string
		idem                   *string
		data, personal         []byte
	)
	err := rows.Scan(&e.Position.Commit, &pos, &e.ID, &e.Stream, &rev, &e.Type, &sv, &occ, &rec,
		&actorKind, &e.Actor.ID, &e.Actor.Company, &e.CorrelationID, &e.CausationID, &idem,
		&data, &personal, &e.PrevHash, &e.Hash)
	if err != nil {
		return e, err
	}
	e.Position.Prepare = uint64(pos)
	e.Revision = uint64(rev)
	e.SchemaVersion = int(sv)
	e.OccurredAt = time.Unix(0, occ).UTC()
	e.RecordedAt = time.Unix(0, rec).UTC()
	e.Actor.Kind = domain.ActorKind(actorKind)
	if idem != nil {
		e.IdempotencyKey = *idem
	}
	if data == nil {
		data = []byte{}
	}
	e.Data = data
	if len(personal) > 0 {
		e.Personal = personal
	}
	return e, nil
}
