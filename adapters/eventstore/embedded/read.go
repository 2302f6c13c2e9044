package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"

	"github.com/kycengine/kyc/adapters/eventstore/catchup"
	"github.com/kycengine/kyc/domain"
)

const eventColumns = `position, id, stream, revision, type, schema_version, occurred_at, recorded_at,
	actor_kind, actor_id, actor_company, correlation_id, causation_id, idempotency_key, data, personal, prev_hash, hash`

// streamEvents selects a stream's events with revisions matching cond
// (?2 is the bound revision), from stream_index and from the log tail that is
// not indexed yet, in one statement and so in one snapshot. ?4 is the highest
// position the reader may see.
func streamEvents(cond, order string) string {
	return `SELECT ` + eventColumns + ` FROM (
		SELECT e.* FROM streams s JOIN stream_index si ON si.stream_id = s.id JOIN events e ON e.position = si.position
		WHERE s.name = ?1 AND si.revision ` + cond + ` ?2 AND si.position <= ?4
		UNION ALL
		SELECT * FROM events
		WHERE position > (SELECT indexed_through FROM stream_index_state) AND position <= ?4
			AND stream = ?1 AND revision ` + cond + ` ?2
	) ORDER BY revision ` + order + ` LIMIT ?3`
}

// readStmts are prepared once on the read pool; database/sql prepares each
// on a connection the first time it runs there.
type readStmts struct {
	all, forwards, backwards, exists, byIdemKey *sql.Stmt
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
	return err
}

func (r *readStmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{r.all, r.forwards, r.backwards, r.exists, r.byIdemKey} {
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
