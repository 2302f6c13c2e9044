package postgres

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kycengine/kyc/projections"
)

type activeGen struct {
	gen projections.Generation
	// switches is the projection's activation count when gen became
	// active: of two values learnt out of order, the higher count is newer.
	switches int64
}

// activeCache holds each projection's active generation as last learnt from
// the database. It is trusted only while the listener is connected, since
// only then does a switch made by another process reach it.
type activeCache struct {
	mu      sync.RWMutex
	trusted bool
	gens    map[string]activeGen
}

func newActiveCache() *activeCache {
	return &activeCache{gens: map[string]activeGen{}}
}

// get returns the cached generation when it can be used without asking the
// database. "No active generation" is never served from the cache: the
// first activation must be seen at once, and before it there is nothing
// to read anyway.
func (c *activeCache) get(name string) (projections.Generation, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	a := c.gens[name]
	return a.gen, c.trusted && a.gen != 0
}

func (c *activeCache) put(name string, a activeGen) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.gens[name]; !ok || a.switches > cur.switches {
		c.gens[name] = a
	}
}

func (c *activeCache) setTrusted(t bool) {
	c.mu.Lock()
	c.trusted = t
	c.mu.Unlock()
}

// querier is a pool or a connection.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// loadActive reads every projection's active generation into the cache.
func (s *Store) loadActive(ctx context.Context, q querier) error {
	rows, err := q.Query(ctx, "SELECT name, active, switches FROM read_projections")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var gen, switches int64
		if err := rows.Scan(&name, &gen, &switches); err != nil {
			return err
		}
		s.active.put(name, activeGen{gen: projections.Generation(gen), switches: switches})
	}
	return rows.Err()
}

// activeGeneration is the generation reads of a projection use; fresh skips
// the cache. 0 means none.
func (s *Store) activeGeneration(ctx context.Context, name string, fresh bool) (projections.Generation, error) {
	if !fresh {
		if gen, ok := s.active.get(name); ok {
			return gen, nil
		}
	}
	var gen, switches int64
	err := s.pool.QueryRow(ctx, "SELECT active, switches FROM read_projections WHERE name = $1", name).Scan(&gen, &switches)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	s.active.put(name, activeGen{gen: projections.Generation(gen), switches: switches})
	return projections.Generation(gen), nil
}

// withActive runs the read fn on the active generation of a projection (0
// when there is none). When the generation's tables are gone, another
// process switched generations since the number was read: fn runs again on
// the generation the database names now, and again while switches keep
// overtaking it (each retry needs a newer generation, so a reader falls
// behind only while rebuilds follow each other faster than one read). fn
// must only read.
func (s *Store) withActive(ctx context.Context, name string, fn func(gen projections.Generation) error) error {
	if err := s.usable(); err != nil {
		return err
	}
	gen, err := s.activeGeneration(ctx, name, false)
	if err != nil {
		return err
	}
	const maxRetries = 8
	for range maxRetries {
		err = fn(gen)
		if !isUndefinedTable(err) {
			return err
		}
		now, lookupErr := s.activeGeneration(ctx, name, true)
		if lookupErr != nil {
			return errors.Join(err, lookupErr)
		}
		if now == gen {
			// The active generation's own tables are missing: not a race.
			return err
		}
		s.log.Debug("postgres read model: read reached a replaced generation; retrying on the active one",
			"projection", name, "stale", gen, "active", now)
		gen = now
	}
	return fn(gen)
}

// listen keeps a connection that LISTENs for generation switches and
// reloads the cache on each, reconnecting after failures. While it is not
// connected the cache is not trusted and reads ask the database.
func (s *Store) listen(ctx context.Context, cc *pgx.ConnConfig) {
	defer close(s.listenDone)
	const minBackoff = 50 * time.Millisecond
	backoff := minBackoff
	for {
		err := s.listenOnce(ctx, cc, func() { backoff = minBackoff })
		s.active.setTrusted(false)
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("postgres read model: generation-switch listener lost; reads look the active generation up until it is back",
			"err", err, "retry_in", backoff.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context, cc *pgx.ConnConfig, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	connected()
	for {
		// Loaded after LISTEN took effect, so a switch that commits from
		// here on is either in what is loaded or notified afterwards.
		if err := s.loadActive(ctx, conn); err != nil {
			return err
		}
		s.active.setTrusted(true)
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
	}
}

// queueCustomPlans starts a batch of list or audit queries by making them
// planned with their values. pgx prepares each statement once per
// connection, and after five runs PostgreSQL may switch a prepared
// statement to a generic plan, made without the values; filter values are
// skewed (a one-letter prefix or a common status against a rare one) and one
// plan fits none of them well. The setting is local to the batch's implicit
// transaction, so point reads keep their cheap generic plans.
func queueCustomPlans(b *pgx.Batch) {
	b.Queue(customPlansSQL)
}

const customPlansSQL = "SELECT set_config('plan_cache_mode', 'force_custom_plan', true)"

// queueCustomerListPlans is queueCustomPlans for lists of customers, whose
// queries also run without parallel workers. A worker is a process started
// for the one query, which faults in each shared buffer it touches (about
// 12 µs a buffer): at 1,000,000 customers the count of an age range took
// 45 ms p95 with a worker and 14 ms without. The lists that gained from
// workers were the combinations, which now merge their filters instead.
func queueCustomerListPlans(b *pgx.Batch) {
	b.Queue(customPlansSQL + ", set_config('max_parallel_workers_per_gather', '0', true)")
}
