// Package catchup turns a store's "read a page of the global log" and "tell me
// when something was committed" into the SubscribeAll semantics of
// domain.EventStore: every event after a checkpoint, in global order, exactly
// once, first the stored ones and then each new one as it is committed.
//
// A store only has to guarantee that a page read after a commit was signalled
// sees that commit, and that positions it returns never fill in behind a page
// already read. Stores whose order is a single counter assigned by one writer
// (SQLite) get that for free; stores that order by commit must read only up to
// a safe horizon in their Read function.
package catchup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kycengine/kyc/domain"
)

// DefaultPageSize is used when Source.PageSize is not positive.
const DefaultPageSize = 256

// ReadPage reads up to limit events of the global log after position after,
// in global order.
type ReadPage func(ctx context.Context, after domain.Position, limit int) ([]domain.RecordedEvent, error)

// Handler receives each event of a subscription.
type Handler func(ctx context.Context, e domain.RecordedEvent) error

// Source is what a store provides to run a subscription.
type Source struct {
	// Read reads a page of the global log.
	Read ReadPage
	// Notify returns a channel that is closed (or receives) once events were
	// committed after the call. The subscription takes it before each read,
	// so a commit that lands while the read runs still wakes it: no lost
	// wakeups. Nil means no notifications; PollInterval must then be set.
	Notify func() <-chan struct{}
	// PageSize is the read limit; a shorter page means the subscription has
	// caught up and waits. Not positive: DefaultPageSize.
	PageSize int
	// PollInterval, when positive, re-reads after this long even without a
	// notification, for stores whose notifications can be lost (a dropped
	// LISTEN connection) or come from another process (a read-only view of a
	// file a server writes).
	PollInterval time.Duration
	// MinReadInterval, when positive, spaces the reads of a subscription
	// that has caught up: its next read starts no sooner than this after the
	// one before began, however often commits wake it. Under many writers
	// every commit wakes every subscription, and where a read has a high
	// fixed cost (PostgreSQL's horizon and held-back check) a read for each
	// commit costs more than the events it brings. A subscription reading
	// full pages, catching up, is never held back.
	MinReadInterval time.Duration
}

// ErrOutOfOrder is returned when Read hands back an event that is not after
// the subscription's checkpoint; delivering it would break exactly-once.
var ErrOutOfOrder = errors.New("catchup: store returned an event out of order")

// Run calls handle for every event after position after, in global order and
// exactly once, until ctx ends (it returns ctx.Err()), handle fails (it returns
// that error unchanged) or a read fails.
func Run(ctx context.Context, src Source, after domain.Position, handle Handler) error {
	if src.Read == nil {
		return errors.New("catchup: Source.Read is nil")
	}
	if src.Notify == nil && src.PollInterval <= 0 {
		return errors.New("catchup: Source needs Notify or a PollInterval")
	}
	if handle == nil {
		return errors.New("catchup: handler is nil")
	}
	pageSize := src.PageSize
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	var timer *time.Timer
	if src.PollInterval > 0 {
		timer = time.NewTimer(src.PollInterval)
		defer timer.Stop()
	}
	checkpoint := after
	var lastRead time.Time
	caughtUp := false
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if src.MinReadInterval > 0 {
			if wait := src.MinReadInterval - time.Since(lastRead); caughtUp && wait > 0 {
				if err := sleep(ctx, wait); err != nil {
					return err
				}
			}
			lastRead = time.Now()
		}
		var wake <-chan struct{}
		if src.Notify != nil {
			wake = src.Notify()
		}
		page, err := src.Read(ctx, checkpoint, pageSize)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			return fmt.Errorf("catchup: read after %s: %w", checkpoint, err)
		}
		for _, e := range page {
			if !checkpoint.Less(e.Position) {
				return fmt.Errorf("%w: position %s after checkpoint %s", ErrOutOfOrder, e.Position, checkpoint)
			}
			if err := handle(ctx, e); err != nil {
				return err
			}
			checkpoint = e.Position
		}
		caughtUp = len(page) < pageSize
		if !caughtUp {
			continue
		}
		var poll <-chan time.Time
		if timer != nil {
			// Go 1.23+ timers: Reset drops a pending tick, so no drain is needed.
			timer.Reset(src.PollInterval)
			poll = timer.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-poll:
		}
	}
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Notifier wakes every waiter at once by closing the channel they hold and
// starting a new one. The zero value is ready to use; stores embed it and call
// Broadcast after each commit.
type Notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// Wait returns a channel that is closed by the next Broadcast.
func (n *Notifier) Wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// Broadcast wakes everyone who called Wait before it.
func (n *Notifier) Broadcast() {
	n.mu.Lock()
	defer n.mu.Unlock()
	// With no waiter since the last broadcast there is nothing to close, and a
	// store that commits often without subscribers allocates nothing.
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}
