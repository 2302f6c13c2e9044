// Package postgres hands out leases (projections.Leases) through PostgreSQL
// session advisory locks, so that each projection of a deployment runs in
// exactly one of the processes that share a database.
//
// A lease is a session lock held on a connection of its own. It is lost when
// that connection is: a process killed with SIGKILL loses its socket, the
// server ends the session, the lock goes, and a waiting process takes it on
// its next try. A holder checks its connection every CheckInterval, so a
// process cut off from the database learns within that time that it must
// stop writing; the read-model store's fencing covers the moments between.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config of the lease service.
type Config struct {
	// URL of the database whose advisory locks are the leases.
	URL string
	// RetryInterval is how often a waiting process tries to take a lease
	// (default 1s): how long a projection may stand still after its holder died.
	RetryInterval time.Duration
	// CheckInterval is how often a holder checks its connection (default 1s).
	CheckInterval time.Duration
	Logger        *slog.Logger
}

// Leases implements projections.Leases.
type Leases struct {
	cfg Config
	log *slog.Logger
}

// New validates cfg; it connects only when a lease is asked for.
func New(cfg Config) (*Leases, error) {
	if _, err := pgx.ParseConfig(cfg.URL); err != nil {
		return nil, fmt.Errorf("lease database: %w", err)
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = time.Second
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Leases{cfg: cfg, log: log}, nil
}

// key maps a lease name onto the 64-bit key space of advisory locks. The
// prefix keeps the engine's keys apart from any other user of the database.
func key(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("kyc-lease:"))
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// Acquire blocks until this process holds the named lease or ctx ends.
func (l *Leases) Acquire(ctx context.Context, name string) (context.Context, func(), error) {
	k := key(name)
	for {
		conn, err := pgx.Connect(ctx, l.cfg.URL)
		if err == nil {
			var got bool
			err = conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", k).Scan(&got)
			if err == nil && got {
				return l.hold(ctx, conn, name, k)
			}
			_ = conn.Close(context.WithoutCancel(ctx))
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if err != nil {
			l.log.Warn("lease: cannot reach the database; retrying", "lease", name, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(l.cfg.RetryInterval):
		}
	}
}

// hold watches the lease's connection until the lease is released or lost.
func (l *Leases) hold(ctx context.Context, conn *pgx.Conn, name string, k int64) (context.Context, func(), error) {
	held, cancel := context.WithCancelCause(ctx)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(l.cfg.CheckInterval)
		defer t.Stop()
		for {
			select {
			case <-held.Done():
				return
			case <-t.C:
			}
			check, done := context.WithTimeout(held, l.cfg.CheckInterval)
			err := conn.Ping(check)
			done()
			if err != nil && held.Err() == nil {
				l.log.Warn("lease: lost its connection", "lease", name, "err", err)
				cancel(fmt.Errorf("lease %s lost: %w", name, err))
				return
			}
		}
	}()
	var once sync.Once
	release := func() {
		once.Do(func() {
			cancel(errReleased)
			<-stopped
			closeCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
			defer done()
			// Closing the session frees the lock too; unlocking first
			// hands it over without waiting for the server to notice.
			_, _ = conn.Exec(closeCtx, "SELECT pg_advisory_unlock($1)", k)
			_ = conn.Close(closeCtx)
		})
	}
	return held, release, nil
}

var errReleased = errors.New("lease released")
