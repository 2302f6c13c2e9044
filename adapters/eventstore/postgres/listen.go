package postgres

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// listenCheckEvery is how long the listener waits for a notification
	// before it pings the server, so a connection that died silently (a
	// dropped TCP path sends no reset) is noticed.
	listenCheckEvery = 30 * time.Second
	minReconnectWait = 50 * time.Millisecond
	maxReconnectWait = 5 * time.Second
)

// startListener starts the store's one LISTEN connection with its first
// subscription; a store that only appends never opens it.
func (s *Store) startListener() {
	s.listenOnce.Do(func() {
		s.background.Go(s.listenLoop)
	})
}

// listenLoop keeps a LISTEN connection open until the store closes and
// wakes the subscriptions on every notification. While it is down,
// subscriptions fall back on polling.
func (s *Store) listenLoop() {
	wait := minReconnectWait
	for s.closing.Err() == nil {
		listened, err := s.listenSession(s.closing)
		if s.closing.Err() != nil {
			return
		}
		if listened {
			wait = minReconnectWait
		}
		s.log.Warn("postgres event store: notification connection lost, reconnecting; subscriptions poll meanwhile",
			"err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-s.closing.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, maxReconnectWait)
	}
}

// listenSession runs one connection until it fails; listened says whether it
// got as far as listening.
func (s *Store) listenSession(ctx context.Context) (listened bool, err error) {
	conn, err := pgx.ConnectConfig(ctx, s.listen)
	if err != nil {
		return false, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return false, err
	}
	// Whatever committed while nobody listened is read now.
	s.notifier.Broadcast()
	for {
		waitCtx, cancel := context.WithTimeout(ctx, listenCheckEvery)
		_, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			s.notifier.Broadcast()
		case ctx.Err() != nil:
			return true, ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			if err := conn.Ping(ctx); err != nil {
				return true, err
			}
		default:
			return true, err
		}
	}
}

// Bounds of the delay before a subscription read that was held back by the
// horizon is repeated. The delay doubles while reads keep being held back,
// so a long transaction elsewhere costs a few reads per second, not hundreds.
const (
	minRecheckDelay = 2 * time.Millisecond
	maxRecheckDelay = 50 * time.Millisecond
)

// rechecker wakes all subscriptions shortly after a read found events held
// back by the horizon. One timer serves the whole store: its subscriptions
// wait for the same transactions.
type rechecker struct {
	wake func()
	max  time.Duration

	mu      sync.Mutex
	timer   *time.Timer
	pending bool
	delay   time.Duration
	stopped bool
}

// soon arranges a wake-up after the current delay, unless one is pending.
func (r *rechecker) soon() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending || r.stopped {
		return
	}
	if r.delay == 0 {
		r.delay = minRecheckDelay
	}
	r.pending = true
	d := r.delay
	r.delay = min(2*r.delay, max(r.max, minRecheckDelay))
	if r.timer == nil {
		r.timer = time.AfterFunc(d, r.fire)
	} else {
		r.timer.Reset(d)
	}
}

func (r *rechecker) fire() {
	r.mu.Lock()
	r.pending = false
	r.mu.Unlock()
	r.wake()
}

// caughtUp resets the delay: nothing was held back.
func (r *rechecker) caughtUp() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = minRecheckDelay
}

func (r *rechecker) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	if r.timer != nil {
		r.timer.Stop()
	}
}
