package embedded

import (
	"fmt"
	"math"
	"os"
	"time"

	"github.com/kycengine/kyc/domain"
)

// Durability. SQLite with synchronous=FULL syncs the WAL inside COMMIT, so
// the one writer connection would sit idle through every fsync. Instead the
// writer commits with synchronous=NORMAL, which writes the WAL without syncing
// it (SQLite still syncs around checkpoints and when it starts the WAL over),
// and hands each committed batch to the syncer. The syncer syncs the WAL file
// (fdatasync, as SQLite would) once for everything committed so far, and only then answers the batch's
// appends, advances the durable position and wakes subscriptions; meanwhile
// the writer already builds the next batch. An append is therefore
// acknowledged only once it is on disk, as with FULL, and this process's
// readers see nothing beyond the durable position (see Store.visible).

// commitRecord is one committed batch waiting to become durable.
type commitRecord struct {
	reqs    []*appendReq
	answers []appendResp
	written int64 // highest position committed up to and including this batch
	events  int
	start   time.Time
}

// syncLoop makes committed transactions durable and passes them on to be
// answered. It ends when in is closed and drained, and closes done once every
// append has its answer.
func (s *Store) syncLoop(in <-chan *commitRecord, synced chan<- struct{}, done chan<- struct{}) {
	// Answering wakes one goroutine per append, which takes long enough to
	// delay the next sync; another goroutine does it.
	answers := make(chan syncedGroup, maxBatch)
	go s.answerLoop(answers, done)
	defer close(answers)
	for rec := range in {
		group := []*commitRecord{rec}
	drain:
		for {
			select {
			case r, ok := <-in:
				if !ok {
					break drain
				}
				group = append(group, r)
			default:
				break drain
			}
		}
		written := group[len(group)-1].written
		err := s.fatalErr()
		if err == nil && written > s.durable.Load() {
			if serr := s.cfg.syncWAL(s.wal); serr != nil {
				// After a failed fsync the kernel may have dropped the dirty
				// pages; nothing written since the last good sync can be
				// trusted, so the store stops writing.
				err = fmt.Errorf("%w: sync %s: %v", domain.ErrStoreUnavailable, s.wal.Name(), serr)
				s.setFatal(err)
			}
		}
		// The writer may commit its next transaction now: it is the
		// critical path. The buffer holds the one signal it waits for;
		// after the writer is gone nobody reads it, and it is dropped.
		select {
		case synced <- struct{}{}:
		default:
		}
		if err == nil {
			s.durable.Store(written)
			s.notifier.Broadcast()
		}
		answers <- syncedGroup{records: group, err: err}
	}
}

// syncedGroup is transactions whose sync ended, with err when it failed.
type syncedGroup struct {
	records []*commitRecord
	err     error
}

func (s *Store) answerLoop(in <-chan syncedGroup, done chan<- struct{}) {
	defer close(done)
	for g := range in {
		for _, r := range g.records {
			for j, req := range r.reqs {
				a := r.answers[j]
				if g.err != nil && a.err == nil {
					a = appendResp{err: g.err}
				}
				req.resp <- a
			}
			if g.err == nil && r.events > 0 && s.cfg.observer != nil {
				s.cfg.observer.BatchCommitted(len(r.reqs), r.events, time.Since(r.start))
			}
		}
	}
}

// syncAll makes what an earlier process left in the file durable, so that
// all of it can be shown to readers.
func (s *Store) syncAll() error {
	for _, name := range []string{s.path, s.path + "-wal"} {
		f, err := os.Open(name)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("sync %s: %w", name, err)
		}
	}
	return nil
}

// visible is the highest position this process's readers may see: the
// durable position when this process writes, everything when it only reads
// (it cannot know what another process has synced).
func (s *Store) visible() int64 {
	if s.readOnly {
		return math.MaxInt64
	}
	return s.durable.Load()
}

func (s *Store) fatalErr() error {
	if p := s.fatal.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Store) setFatal(err error) { s.fatal.CompareAndSwap(nil, &err) }
