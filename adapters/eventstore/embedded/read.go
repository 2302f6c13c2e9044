package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/eventstore/catchup"
	"github.com/kycengine/kyc/domain"
)

const eventColumns = `position, id, stream, revision, type, schema_version, occurred_at, recorded_at,
	actor_kind, actor_id, actor_company, correlation_id, causation_id, idempotency_key, data, personal, prev_hash, hash`

// indexedColumns are eventColumns read through stream_index. The revision
// comes from stream_index so that SQLite sees the rows come in revision
// order and stops at the limit instead of sorting the whole stream.
const indexedColumns = `e.position, e.id, e.stream, si.revision AS revision, e.type, e.schema_version, e.occurred_at, e.recorded_at,
	e.actor_kind, e.actor_id, e.actor_company, e.correlation_id, e.causation_id, e.idempotency_key, e.data, e.personal, e.prev_hash, e.hash`

// indexedEvents selects a stream's events in stream_index with revisions
// matching cond (?2 is the bound revision, ?3 the limit, ?4 the highest
// position the reader may see). A writing process's readers combine it with
// the writer's tailIndex.
func indexedEvents(cond, order string) string {
	return `SELECT ` + indexedColumns + ` FROM streams s
		JOIN stream_index si ON si.stream_id = s.id JOIN events e ON e.position = si.position
		WHERE s.name = ?1 AND si.revision ` + cond + ` ?2 AND si.position <= ?4
	ORDER BY si.revision ` + order + ` LIMIT ?3`
}

// streamEvents selects a stream's events with revisions matching cond
// (?2 is the bound revision), from stream_index and from the log tail that is
// not indexed yet, in one statement and so in one snapshot. ?4 is the highest
// position the reader may see.
func streamEvents(cond, order string) string {
	return `SELECT ` + indexedColumns + ` FROM streams s
		JOIN stream_index si ON si.stream_id = s.id JOIN events e ON e.position = si.position
		WHERE s.name = ?1 AND si.revision ` + cond + ` ?2 AND si.position <= ?4
	UNION ALL
	SELECT ` + eventColumns + ` FROM events
		WHERE position > (SELECT indexed_through FROM stream_index_state) AND position <= ?4
			AND stream = ?1 AND revision ` + cond + ` ?2
	ORDER BY revision ` + order + ` LIMIT ?3`
}

// readStmts are prepared once on the read pool; database/sql prepares each
// on a connection the first time it runs there.
type readStmts struct {
	all, byIdemKey *sql.Stmt
	// For readers of a writing process, with tailIndex.
	idxForwards, idxBackwards, idxExists *sql.Stmt
	// For read-only processes, which scan the log tail.
	forwards, backwards, exists *sql.Stmt
}

func (r *readStmts) prepare(ctx context.Context, db *sql.DB) error {
	var err error
	prep := func(dst **sql.Stmt, query string) {
		if err == nil {
			*dst, err = db.PrepareContext(ctx, query)
		}
	}
	// LIMIT -1 is SQLite's "no limit".
	prep(&r.all, "SELECT "+eventColumns+" FROM events WHERE position >= ? AND position <= ? ORDER BY position LIMIT ?")
	prep(&r.forwards, streamEvents(">=", "ASC"))
	prep(&r.backwards, streamEvents("<=", "DESC"))
	prep(&r.exists, `SELECT EXISTS (SELECT 1 FROM streams s JOIN stream_index si ON si.stream_id = s.id WHERE s.name = ?1 AND si.position <= ?2)
		OR EXISTS (SELECT 1 FROM events WHERE position > (SELECT indexed_through FROM stream_index_state) AND position <= ?2 AND stream = ?1)`)
	prep(&r.byIdemKey, "SELECT "+eventColumns+" FROM events WHERE idempotency_key = ? AND position <= ? ORDER BY position")
	prep(&r.idxForwards, indexedEvents(">=", "ASC"))
	prep(&r.idxBackwards, indexedEvents("<=", "DESC"))
	prep(&r.idxExists, "SELECT EXISTS (SELECT 1 FROM streams s JOIN stream_index si ON si.stream_id = s.id WHERE s.name = ?1 AND si.position <= ?2)")
	return err
}

func (r *readStmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{r.all, r.byIdemKey, r.idxForwards, r.idxBackwards, r.idxExists, r.forwards, r.backwards, r.exists} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}

func sqlLimit(limit int) int64 {
	if limit <= 0 {
		return -1
	}
	return int64(limit)
}

// clampRevision maps a revision onto SQLite's signed integers; revisions
// never come near the top, so StreamEnd and its neighbours mean "the end".
func clampRevision(rev uint64) int64 {
	if rev > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(rev)
}

// ReadStream implements domain.EventStore.
func (s *Store) ReadStream(ctx context.Context, stream string, dir domain.Direction, from uint64, limit int) ([]domain.RecordedEvent, error) {
	if !s.readOnly {
		events, err := s.readStream(ctx, stream, dir, from, limit)
		if err != nil {
			return nil, fmt.Errorf("embedded: read stream %s: %w", stream, err)
		}
		return events, nil
	}
	st := s.rd.forwards
	if dir == domain.Backwards {
		st = s.rd.backwards
	}
	visible := s.visible()
	events, err := s.query(ctx, st, stream, clampRevision(from), sqlLimit(limit), visible)
	if err != nil {
		return nil, fmt.Errorf("embedded: read stream %s: %w", stream, err)
	}
	if len(events) > 0 {
		return events, nil
	}
	var exists bool
	if err := s.rd.exists.QueryRowContext(ctx, stream, visible).Scan(&exists); err != nil {
		return nil, fmt.Errorf("embedded: read stream %s: %w", stream, err)
	}
	if !exists {
		return nil, fmt.Errorf("embedded: read stream %s: %w", stream, domain.ErrStreamNotFound)
	}
	return events, nil
}

// ReadAll implements domain.EventStore. A limit <= 0 reads to the end.
func (s *Store) ReadAll(ctx context.Context, after domain.Position, limit int) ([]domain.RecordedEvent, error) {
	// Positions here have Commit == Prepare, so the first one after
	// `after` is Commit+1, or Commit itself when after.Prepare is below it.
	first := after.Commit
	if after.Prepare >= after.Commit {
		if first >= math.MaxInt64 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			return nil, nil
		}
		first++
	}
	events, err := s.query(ctx, s.rd.all, clampRevision(first), s.visible(), sqlLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("embedded: read all after %s: %w", after, err)
	}
	return events, nil
}

// FindByIdempotencyKey returns the events that carry key, in global order,
// so a retried command can be answered with its first result.
func (s *Store) FindByIdempotencyKey(ctx context.Context, key string) ([]domain.RecordedEvent, error) {
	if key == "" {
		return nil, errors.New("embedded: find by idempotency key: empty key")
	}
	events, err := s.query(ctx, s.rd.byIdemKey, key, s.visible())
	if err != nil {
		return nil, fmt.Errorf("embedded: find by idempotency key: %w", err)
	}
	return events, nil
}

// SubscribeAll implements domain.EventStore. It also returns, with ErrClosed,
// when the store is closed.
func (s *Store) SubscribeAll(ctx context.Context, after domain.Position, handle func(context.Context, domain.RecordedEvent) error) error {
	if handle == nil {
		return errors.New("embedded: subscribe: nil handler")
	}
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.closing, cancel)
	defer stop()
	src := catchup.Source{Read: s.ReadAll, PageSize: subscriptionPage}
	if s.readOnly {
		// Another process writes; nothing here learns of its commits.
		src.PollInterval = s.cfg.pollInterval
	} else {
		src.Notify = s.notifier.Wait
	}
	err := catchup.Run(subCtx, src, after, handle)
	if err != nil && ctx.Err() == nil && s.closing.Err() != nil && errors.Is(err, context.Canceled) {
		return fmt.Errorf("embedded: subscribe: %w", ErrClosed)
	}
	return err
}

func (s *Store) query(ctx context.Context, st *sql.Stmt, args ...any) ([]domain.RecordedEvent, error) {
	if st == nil {
		return nil, ErrClosed
	}
	rows, err := st.QueryContext(ctx, args...)
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

func scanEvent(rows *sql.Rows) (domain.RecordedEvent, error) {
	var (
		e                      domain.RecordedEvent
		pos, rev, occ, rec, sv int64
		id, actorKind          string
		idem                   sql.NullString
		data, personal         []byte
	)
	err := rows.Scan(&pos, &id, &e.Stream, &rev, &e.Type, &sv, &occ, &rec,
		&actorKind, &e.Actor.ID, &e.Actor.Company, &e.CorrelationID, &e.CausationID, &idem,
		&data, &personal, &e.PrevHash, &e.Hash)
	if err != nil {
		return e, err
	}
	if e.ID, err = uuid.Parse(id); err != nil {
		return e, fmt.Errorf("event at position %d: id %q: %w", pos, id, err)
	}
	e.Position = domain.Position{Commit: uint64(pos), Prepare: uint64(pos)}
	e.Revision = uint64(rev)
	e.SchemaVersion = int(sv)
	e.OccurredAt = time.Unix(0, occ).UTC()
	e.RecordedAt = time.Unix(0, rec).UTC()
	e.Actor.Kind = domain.ActorKind(actorKind)
	e.IdempotencyKey = idem.String
	e.Data = data
	if len(personal) > 0 {
		e.Personal = personal
	}
	return e, nil
}

// readStream reads a stream in a writing process: the older part through
// stream_index, the newest part from the writer's tailIndex.
func (s *Store) readStream(ctx context.Context, stream string, dir domain.Direction, from uint64, limit int) ([]domain.RecordedEvent, error) {
	visible := s.visible()
	if dir == domain.Backwards {
		return s.readBackwards(ctx, stream, from, limit, visible)
	}
	hi := uint64(math.MaxUint64)
	if limit > 0 && from <= math.MaxUint64-uint64(limit) {
		hi = from + uint64(limit) - 1
	}
	// tailIndex first, stream_index second (see tailIndex).
	tail, first, inTail := s.tail.span(nil, stream, from, hi, 0, visible)
	if inTail && from >= first {
		// All that is asked for is in memory: the service's common
		// "anything after the revision I have cached" needs no SQL.
		return s.fetchTail(ctx, tail, false)
	}
	events, err := s.query(ctx, s.rd.idxForwards, stream, clampRevision(from), sqlLimit(limit), visible)
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(events) >= limit {
		return events, nil
	}
	// What the index returned may have been indexed since tailIndex was
	// looked at; those are dropped from the tail.
	next := from
	if len(events) > 0 {
		next = events[len(events)-1].Revision + 1
	}
	i := 0
	for i < len(tail) && tail[i].revision < next {
		i++
	}
	tail = tail[i:]
	if limit > 0 && len(tail) > limit-len(events) {
		tail = tail[:limit-len(events)]
	}
	more, err := s.fetchTail(ctx, tail, false)
	if err != nil {
		return nil, err
	}
	events = append(events, more...)
	if len(events) == 0 && !inTail {
		return nil, s.checkExists(ctx, stream, visible)
	}
	return events, nil
}

func (s *Store) readBackwards(ctx context.Context, stream string, from uint64, limit int, visible int64) ([]domain.RecordedEvent, error) {
	// Newest first: the part in memory, then stream_index below it.
	tail, first, inTail := s.tail.span(nil, stream, 0, from, limit, visible)
	events, err := s.fetchTail(ctx, tail, true)
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(events) >= limit {
		return events, nil
	}
	below := from
	if inTail {
		if first == 0 {
			return events, nil // memory holds the stream from its start
		}
		below = min(below, first-1)
	}
	remaining := limit
	if limit > 0 {
		remaining = limit - len(events)
	}
	older, err := s.query(ctx, s.rd.idxBackwards, stream, clampRevision(below), sqlLimit(remaining), visible)
	if err != nil {
		return nil, err
	}
	events = append(events, older...)
	if len(events) == 0 && !inTail {
		return nil, s.checkExists(ctx, stream, visible)
	}
	return events, nil
}

// checkExists returns domain.ErrStreamNotFound when stream_index has no
// event of the stream a reader may see.
func (s *Store) checkExists(ctx context.Context, stream string, visible int64) error {
	var exists bool
	if err := s.rd.idxExists.QueryRowContext(ctx, stream, visible).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return domain.ErrStreamNotFound
	}
	return nil
}

// fetchTail returns copies of the entries' events, newest first when
// backwards.
func (s *Store) fetchTail(ctx context.Context, entries []tailEntry, backwards bool) ([]domain.RecordedEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, nil
	}
	events := make([]domain.RecordedEvent, len(entries))
	for i, e := range entries {
		events[i] = e.copyEvent()
	}
	if backwards {
		slices.Reverse(events)
	}
	return events, nil
}

// CountAfter counts the events after position after. The single writer hands
// out positions one by one and rolls its counter back with a failed
// transaction, so positions have no gaps and the count is a subtraction.
func (s *Store) CountAfter(ctx context.Context, after domain.Position) (int64, error) {
	if s.rdb == nil {
		return 0, ErrClosed
	}
	var last int64
	if err := s.rdb.QueryRowContext(ctx, "SELECT coalesce(max(position), 0) FROM events WHERE position <= ?", s.visible()).Scan(&last); err != nil {
		return 0, fmt.Errorf("embedded: count after %s: %w", after, err)
	}
	from := clampRevision(after.Commit)
	if after.Prepare < after.Commit {
		from-- // the event at after.Commit itself comes after `after`
	}
	return max(last-from, 0), nil
}

// Tail is the position of the last event a reader can see (domain.Start
// when the log is empty): where a follower of new events only starts.
func (s *Store) Tail(ctx context.Context) (domain.Position, error) {
	if s.rdb == nil {
		return domain.Start, ErrClosed
	}
	var last int64
	if err := s.rdb.QueryRowContext(ctx, "SELECT coalesce(max(position), 0) FROM events WHERE position <= ?", s.visible()).Scan(&last); err != nil {
		return domain.Start, fmt.Errorf("embedded: tail: %w", err)
	}
	return domain.Position{Commit: uint64(last), Prepare: uint64(last)}, nil
}
