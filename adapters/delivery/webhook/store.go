package webhook

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kycengine/kyc/adapters/delivery/state"
	"github.com/kycengine/kyc/domain"
)

// store is the SQL of the webhook tables, in either dialect of the
// delivery state. Queries are written once, with "?" placeholders, "{p}"
// for the table prefix and "{lock}" where PostgreSQL skips rows another
// process has claimed, and rewritten for the dialect.
type store struct {
	db     *sql.DB
	pg     bool
	prefix string
}

func newStore(st *state.Store) *store {
	return &store{db: st.DB(), pg: st.Dialect() == state.Postgres, prefix: st.Dialect().TablePrefix()}
}

// q rewrites a statement for the dialect.
func (s *store) q(src string) string {
	lock := ""
	if s.pg {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	out := strings.NewReplacer("{p}", s.prefix, "{lock}", lock).Replace(src)
	if !s.pg {
		return out
	}
	var b strings.Builder
	n := 0
	for _, r := range out {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ts is a time as the dialect stores it: timestamptz, or Unix milliseconds
// in SQLite.
func (s *store) ts(t time.Time) any {
	if s.pg {
		return t.UTC()
	}
	return t.UnixMilli()
}

// nts is ts for a time that may be absent.
func (s *store) nts(t *time.Time) any {
	if t == nil {
		return nil
	}
	return s.ts(*t)
}

// dbTime scans either dialect's time column.
type dbTime struct {
	t     time.Time
	valid bool
}

func (d *dbTime) Scan(v any) error {
	switch x := v.(type) {
	case nil:
		*d = dbTime{}
	case int64:
		*d = dbTime{t: time.UnixMilli(x).UTC(), valid: true}
	case time.Time:
		*d = dbTime{t: x.UTC(), valid: true}
	default:
		return fmt.Errorf("webhook: cannot read %T as a time", v)
	}
	return nil
}

func (d dbTime) ptr() *time.Time {
	if !d.valid {
		return nil
	}
	t := d.t
	return &t
}

// msec drops what SQLite would not keep, so values read back equal values
// written in both dialects.
func msec(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

const (
	qInsertEndpoint = `INSERT INTO {p}webhook_endpoints (id, company, url, types, description, created_at) VALUES (?, ?, ?, ?, ?, ?)`
	qInsertSecret   = `INSERT INTO {p}webhook_secrets (endpoint_id, id, secret, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`
	qEndpoint       = `SELECT id, company, url, types, description, created_at FROM {p}webhook_endpoints WHERE id = ?`
	qEndpoints      = `SELECT id, company, url, types, description, created_at FROM {p}webhook_endpoints ORDER BY created_at, id`
	qEndpointsOf    = `SELECT id, company, url, types, description, created_at FROM {p}webhook_endpoints WHERE company = ? ORDER BY created_at, id`
	qSecrets        = `SELECT id, secret, created_at, expires_at FROM {p}webhook_secrets WHERE endpoint_id = ? ORDER BY created_at, id`
	qExpireSecrets  = `UPDATE {p}webhook_secrets SET expires_at = ? WHERE endpoint_id = ? AND (expires_at IS NULL OR expires_at > ?)`
	qPurgeSecrets   = `DELETE FROM {p}webhook_secrets WHERE endpoint_id = ? AND expires_at <= ?`
	qDeleteAttempts = `DELETE FROM {p}webhook_attempts WHERE delivery_id IN (SELECT id FROM {p}webhook_deliveries WHERE endpoint_id = ?)`
	qDeleteDeliv    = `DELETE FROM {p}webhook_deliveries WHERE endpoint_id = ?`
	qDeleteSecrets  = `DELETE FROM {p}webhook_secrets WHERE endpoint_id = ?`
	qDeleteEndpoint = `DELETE FROM {p}webhook_endpoints WHERE id = ?`

	qTargets        = `SELECT id, types FROM {p}webhook_endpoints WHERE company = ? OR company = '*'`
	qAllTargets     = `SELECT id, types FROM {p}webhook_endpoints WHERE company = '*'`
	qCustomer       = `SELECT company FROM {p}webhook_customers WHERE customer_id = ?`
	qRememberCust   = `INSERT INTO {p}webhook_customers (customer_id, company) VALUES (?, ?) ON CONFLICT (customer_id) DO NOTHING`
	qInsertDelivery = `INSERT INTO {p}webhook_deliveries (id, endpoint_id, event_id, event_type, customer_id, company, payload, status,
		next_attempt_at, created_at, position_commit, position_prepare)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?) ON CONFLICT DO NOTHING`

	qClaim = `UPDATE {p}webhook_deliveries SET in_flight_until = ?, claimed_by = ?
		WHERE id IN (SELECT id FROM {p}webhook_deliveries
			WHERE status = 'pending' AND next_attempt_at <= ? AND (in_flight_until IS NULL OR in_flight_until <= ?)
			ORDER BY next_attempt_at LIMIT ?{lock})
		RETURNING id`
	qNextDue = `SELECT MIN(next_attempt_at) FROM {p}webhook_deliveries
		WHERE status = 'pending' AND (in_flight_until IS NULL OR in_flight_until <= ?)`
	qRelease = `UPDATE {p}webhook_deliveries SET in_flight_until = NULL, claimed_by = NULL WHERE claimed_by = ? AND status = 'pending'`

	qSendable = `SELECT d.status, d.payload, d.endpoint_id, e.url FROM {p}webhook_deliveries d
		JOIN {p}webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id = ?`
	qActiveKeys  = `SELECT secret FROM {p}webhook_secrets WHERE endpoint_id = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY created_at, id`
	qCountAttemp = `UPDATE {p}webhook_deliveries SET attempts = attempts + 1, last_error = ?, last_status = ? WHERE id = ? RETURNING attempts`
	qAddAttempt  = `INSERT INTO {p}webhook_attempts (delivery_id, attempt, at, http_status, error, duration_ms) VALUES (?, ?, ?, ?, ?, ?)`
	qDelivered   = `UPDATE {p}webhook_deliveries SET status = 'delivered', delivered_at = ?, rounds = rounds + 1,
		next_attempt_at = NULL, in_flight_until = NULL, claimed_by = NULL WHERE id = ? AND status = 'pending'`
	qRounds    = `SELECT rounds FROM {p}webhook_deliveries WHERE id = ? AND status = 'pending'`
	qRetryLate = `UPDATE {p}webhook_deliveries SET rounds = ?, next_attempt_at = ?, in_flight_until = NULL, claimed_by = NULL
		WHERE id = ? AND status = 'pending'`
	qDead = `UPDATE {p}webhook_deliveries SET rounds = ?, status = 'dead', dead_at = ?, next_attempt_at = NULL,
		in_flight_until = NULL, claimed_by = NULL WHERE id = ? AND status = 'pending'`
	qFailNote = `UPDATE {p}webhook_deliveries SET last_error = ? WHERE id = ? AND attempts = 0`

	deliveryColumns = `d.id, d.endpoint_id, d.event_id, d.event_type, d.customer_id, d.company, d.status, d.attempts, d.rounds,
		d.replays, d.last_error, d.last_status, d.next_attempt_at, d.created_at, d.delivered_at, d.dead_at, d.replayed_at`
	qDelivery = `SELECT ` + deliveryColumns + `, e.company, d.payload FROM {p}webhook_deliveries d JOIN {p}webhook_endpoints e ON e.id = d.endpoint_id WHERE d.id = ?`
	// Newest first; deliveries made in the same millisecond in event order.
	deliveryOrder = ` ORDER BY d.created_at DESC, d.position_commit DESC, d.position_prepare DESC, d.id DESC`
	qDeliveries   = `SELECT ` + deliveryColumns + ` FROM {p}webhook_deliveries d WHERE d.endpoint_id = ?` + deliveryOrder + ` LIMIT ? OFFSET ?`
	qDeliveriesIn = `SELECT ` + deliveryColumns + ` FROM {p}webhook_deliveries d WHERE d.endpoint_id = ? AND d.status = ?` + deliveryOrder + ` LIMIT ? OFFSET ?`
	qCountDeliv   = `SELECT COUNT(*) FROM {p}webhook_deliveries WHERE endpoint_id = ?`
	qCountDelivIn = `SELECT COUNT(*) FROM {p}webhook_deliveries WHERE endpoint_id = ? AND status = ?`
	qAttempts     = `SELECT attempt, at, http_status, error, duration_ms FROM {p}webhook_attempts WHERE delivery_id = ? ORDER BY attempt`
	qReplay       = `UPDATE {p}webhook_deliveries SET status = 'pending', rounds = 0, replays = replays + 1, replayed_at = ?, next_attempt_at = ?,
		delivered_at = NULL, dead_at = NULL, in_flight_until = NULL, claimed_by = NULL WHERE id = ? AND status IN ('delivered', 'dead')`
)

// inTx runs fn in a transaction and commits it.
func (s *store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func (s *store) insertEndpoint(ctx context.Context, e Endpoint, key []byte) error {
	types, err := json.Marshal(e.Types)
	if err != nil {
		return err
	}
	sec := e.Secrets[0]
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(qInsertEndpoint), e.ID, e.Company, e.URL, string(types), e.Description, s.ts(e.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(qInsertSecret), e.ID, sec.ID, key, s.ts(sec.CreatedAt), s.nts(sec.ExpiresAt))
		return err
	})
}

// rowScanner is what *sql.Row and *sql.Rows share.
type rowScanner interface{ Scan(dest ...any) error }

func scanEndpoint(r rowScanner) (Endpoint, error) {
	var (
		e       Endpoint
		types   []byte
		created dbTime
	)
	if err := r.Scan(&e.ID, &e.Company, &e.URL, &types, &e.Description, &created); err != nil {
		return Endpoint{}, err
	}
	if err := json.Unmarshal(types, &e.Types); err != nil {
		return Endpoint{}, fmt.Errorf("endpoint %s: types: %w", e.ID, err)
	}
	if e.Types == nil {
		e.Types = []string{}
	}
	e.CreatedAt = created.t
	return e, nil
}

// endpoint reads one endpoint with its secrets' metadata (ErrNotFound when
// there is none).
func (s *store) endpoint(ctx context.Context, id string) (Endpoint, error) {
	e, err := scanEndpoint(s.db.QueryRowContext(ctx, s.q(qEndpoint), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Endpoint{}, fmt.Errorf("%w: endpoint %s", ErrNotFound, id)
	}
	if err != nil {
		return Endpoint{}, err
	}
	if e.Secrets, err = s.secrets(ctx, id); err != nil {
		return Endpoint{}, err
	}
	return e, nil
}

func (s *store) secrets(ctx context.Context, endpointID string) ([]SecretInfo, error) {
	rows, err := s.db.QueryContext(ctx, s.q(qSecrets), endpointID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []SecretInfo{}
	for rows.Next() {
		var (
			si      SecretInfo
			key     []byte
			created dbTime
			expires dbTime
		)
		if err := rows.Scan(&si.ID, &key, &created, &expires); err != nil {
			return nil, err
		}
		si.CreatedAt, si.ExpiresAt = created.t, expires.ptr()
		out = append(out, si)
	}
	return out, rows.Err()
}

func (s *store) endpoints(ctx context.Context, scope Scope) ([]Endpoint, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if scope.all {
		rows, err = s.db.QueryContext(ctx, s.q(qEndpoints))
	} else {
		rows, err = s.db.QueryContext(ctx, s.q(qEndpointsOf), scope.company)
	}
	if err != nil {
		return nil, err
	}
	var out []Endpoint
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, e)
	}
	// The rows are closed before the secrets are read: SQLite has one
	// connection.
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		if out[i].Secrets, err = s.secrets(ctx, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *store) deleteEndpoint(ctx context.Context, id string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{qDeleteAttempts, qDeleteDeliv, qDeleteSecrets, qDeleteEndpoint} {
			if _, err := tx.ExecContext(ctx, s.q(q), id); err != nil {
				return err
			}
		}
		return nil
	})
}

// rotate adds a secret and makes the active ones expire at expireOld (or
// earlier, if they already expire sooner), dropping those already expired.
func (s *store) rotate(ctx context.Context, endpointID string, sec SecretInfo, key []byte, now, expireOld time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(qPurgeSecrets), endpointID, s.ts(now)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(qExpireSecrets), s.ts(expireOld), endpointID, s.ts(expireOld)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(qInsertSecret), endpointID, sec.ID, key, s.ts(sec.CreatedAt), nil)
		return err
	})
}

// target is an endpoint a new event may go to.
type target struct {
	id    string
	types []string
}

// wants reports whether the endpoint takes events of type typ; no types
// means every type.
func (t target) wants(typ string) bool { return len(t.types) == 0 || slices.Contains(t.types, typ) }

// targets are the endpoints of company and those of every company.
func (s *store) targets(ctx context.Context, company string) ([]target, error) {
	var (
		rows *sql.Rows
		err  error
	)
	if company == "" {
		rows, err = s.db.QueryContext(ctx, s.q(qAllTargets))
	} else {
		rows, err = s.db.QueryContext(ctx, s.q(qTargets), company)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []target
	for rows.Next() {
		var (
			t     target
			types []byte
		)
		if err := rows.Scan(&t.id, &types); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(types, &t.types); err != nil {
			return nil, fmt.Errorf("endpoint %s: types: %w", t.id, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// customerCompany is the company remembered for a customer ("" when none).
func (s *store) customerCompany(ctx context.Context, customerID string) (string, error) {
	var company string
	err := s.db.QueryRowContext(ctx, s.q(qCustomer), customerID).Scan(&company)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return company, err
}

func (s *store) rememberCustomer(ctx context.Context, customerID, company string) error {
	_, err := s.db.ExecContext(ctx, s.q(qRememberCust), customerID, company)
	return err
}

// registration is a customer's company, learned from its registration.
type registration struct{ customerID, company string }

// newDelivery is a delivery the fan-out creates.
type newDelivery struct {
	id, endpointID, eventID, eventType, customerID, company string
	payload                                                 []byte
	// position is the event's place in the log; 0/0 when the message did
	// not say.
	position domain.Position
}

// insertDeliveries records the deliveries of one event at once (and, for a
// registration, the customer's company), ignoring those that exist: the
// bus may deliver an event again.
func (s *store) insertDeliveries(ctx context.Context, registered *registration, ds []newDelivery, now time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if registered != nil {
			if _, err := tx.ExecContext(ctx, s.q(qRememberCust), registered.customerID, registered.company); err != nil {
				return err
			}
		}
		for _, d := range ds {
			if _, err := tx.ExecContext(ctx, s.q(qInsertDelivery), d.id, d.endpointID, d.eventID, d.eventType, d.customerID, d.company,
				d.payload, s.ts(now), s.ts(now), dbPosition(d.position.Commit), dbPosition(d.position.Prepare)); err != nil {
				return fmt.Errorf("delivery %s: %w", d.id, err)
			}
		}
		return nil
	})
}

// dbPosition stores a log position's part in a signed 64-bit column. The
// stores' positions stay far below 2^63; one above would be listed as if it
// came first.
func dbPosition(v uint64) int64 { return int64(min(v, math.MaxInt64)) }

// claim leases up to limit due deliveries to this process until until.
func (s *store) claim(ctx context.Context, owner string, now, until time.Time, limit int) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.q(qClaim), s.ts(until), owner, s.ts(now), s.ts(now), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// nextDue is when the earliest unclaimed pending delivery is due (nil when
// there is none).
func (s *store) nextDue(ctx context.Context, now time.Time) (*time.Time, error) {
	var t dbTime
	if err := s.db.QueryRowContext(ctx, s.q(qNextDue), s.ts(now)).Scan(&t); err != nil {
		return nil, err
	}
	return t.ptr(), nil
}

func (s *store) release(ctx context.Context, owner string) error {
	_, err := s.db.ExecContext(ctx, s.q(qRelease), owner)
	return err
}

// sendable is what a request needs.
type sendable struct {
	status     string
	payload    []byte
	endpointID string
	url        string
	keys       [][]byte
}

// sendable reads a delivery for sending; ok is false when it is gone.
func (s *store) sendable(ctx context.Context, id string, now time.Time) (sendable, bool, error) {
	var d sendable
	err := s.db.QueryRowContext(ctx, s.q(qSendable), id).Scan(&d.status, &d.payload, &d.endpointID, &d.url)
	if errors.Is(err, sql.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, err
	}
	rows, err := s.db.QueryContext(ctx, s.q(qActiveKeys), d.endpointID, s.ts(now))
	if err != nil {
		return d, false, err
	}
	defer rows.Close()
	for rows.Next() {
		var key []byte
		if err := rows.Scan(&key); err != nil {
			return d, false, err
		}
		d.keys = append(d.keys, key)
	}
	return d, true, rows.Err()
}

// recordAttempt counts one request and, when it succeeded, marks the
// delivery delivered.
func (s *store) recordAttempt(ctx context.Context, id string, a Attempt, ok bool) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, s.q(qCountAttemp), a.Error, a.Status, id).Scan(&n); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(qAddAttempt), id, n, s.ts(a.At), a.Status, a.Error, a.Duration.Milliseconds()); err != nil {
			return err
		}
		if ok {
			_, err := tx.ExecContext(ctx, s.q(qDelivered), s.ts(a.At), id)
			return err
		}
		return nil
	})
}

// roundFailed schedules the next round of a pending delivery, or makes it
// dead after its last round. It returns the status it left the delivery in
// ("" when the delivery is no longer pending).
func (s *store) roundFailed(ctx context.Context, id string, sched Schedule, reason string, now time.Time) (string, error) {
	var status string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var rounds int
		err := tx.QueryRowContext(ctx, s.q(qRounds), id).Scan(&rounds)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		// A round that failed before any request (the database was down)
		// still says why.
		if _, err := tx.ExecContext(ctx, s.q(qFailNote), clip(reason, maxErrorLen), id); err != nil {
			return err
		}
		rounds++
		if rounds >= sched.Rounds() {
			status = StatusDead
			_, err = tx.ExecContext(ctx, s.q(qDead), rounds, s.ts(now), id)
			return err
		}
		status = StatusPending
		_, err = tx.ExecContext(ctx, s.q(qRetryLate), rounds, s.ts(now.Add(sched.delay(rounds))), id)
		return err
	})
	return status, err
}

func scanDelivery(r rowScanner, extra ...any) (Delivery, error) {
	var (
		d                                        Delivery
		lastStatus                               sql.NullInt64
		next, created, delivered, dead, replayed dbTime
	)
	dest := []any{&d.ID, &d.EndpointID, &d.EventID, &d.EventType, &d.CustomerID, &d.Company, &d.Status, &d.Attempts, &d.Rounds,
		&d.Replays, &d.LastError, &lastStatus, &next, &created, &delivered, &dead, &replayed}
	if err := r.Scan(append(dest, extra...)...); err != nil {
		return Delivery{}, err
	}
	if lastStatus.Valid {
		v := int(lastStatus.Int64)
		d.LastStatus = &v
	}
	d.NextAttemptAt, d.CreatedAt, d.DeliveredAt, d.DeadAt, d.ReplayedAt = next.ptr(), created.t, delivered.ptr(), dead.ptr(), replayed.ptr()
	return d, nil
}

// delivery reads one delivery, the company of its endpoint and its payload.
func (s *store) delivery(ctx context.Context, id string) (d Delivery, endpointCompany string, payload []byte, err error) {
	d, err = scanDelivery(s.db.QueryRowContext(ctx, s.q(qDelivery), id), &endpointCompany, &payload)
	if errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, "", nil, fmt.Errorf("%w: delivery %s", ErrNotFound, id)
	}
	return d, endpointCompany, payload, err
}

func (s *store) deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, int, error) {
	var (
		total int
		err   error
		rows  *sql.Rows
	)
	offset := (f.Page - 1) * f.PerPage
	if f.Status == "" {
		err = s.db.QueryRowContext(ctx, s.q(qCountDeliv), f.EndpointID).Scan(&total)
		if err == nil {
			rows, err = s.db.QueryContext(ctx, s.q(qDeliveries), f.EndpointID, f.PerPage, offset)
		}
	} else {
		err = s.db.QueryRowContext(ctx, s.q(qCountDelivIn), f.EndpointID, f.Status).Scan(&total)
		if err == nil {
			rows, err = s.db.QueryContext(ctx, s.q(qDeliveriesIn), f.EndpointID, f.Status, f.PerPage, offset)
		}
	}
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []Delivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, d)
	}
	return out, total, rows.Err()
}

func (s *store) attempts(ctx context.Context, deliveryID string) ([]Attempt, error) {
	rows, err := s.db.QueryContext(ctx, s.q(qAttempts), deliveryID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Attempt{}
	for rows.Next() {
		var (
			a      Attempt
			at     dbTime
			status sql.NullInt64
			ms     int64
		)
		if err := rows.Scan(&a.Number, &at, &status, &a.Error, &ms); err != nil {
			return nil, err
		}
		a.At, a.Duration = at.t, time.Duration(ms)*time.Millisecond
		if status.Valid {
			v := int(status.Int64)
			a.Status = &v
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// replay makes a delivered or dead delivery pending again, due now; ok is
// false when it was pending already.
func (s *store) replay(ctx context.Context, id string, now time.Time) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(qReplay), s.ts(now), s.ts(now), id)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
