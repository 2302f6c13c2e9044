package kurrenttest

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"
)

// logStart is where the first event lands. A real node writes an epoch
// record before any event, so no event ever sits at position 0; keeping that
// gap stops clients from confusing "position zero" with "nothing read yet".
const logStart = 128

// recordOverhead stands in for the prepare record header of a real node, so
// positions grow by more than one per event and clients cannot assume they are
// contiguous.
const recordOverhead = 64

// tombstoneRevision is the stream revision a real node gives to the
// $streamDeleted record (long.MaxValue).
const tombstoneRevision = math.MaxInt64

// maxAppendSize is the default MaxAppendSize of a real node (1 MiB).
const maxAppendSize = 1 << 20

// record is one event of the log. It is never changed after it is appended, so
// readers may hold it outside the lock.
type record struct {
	stream   string
	revision uint64
	pos      uint64 // commit == prepare: single-event transactions only
	id       uuid.UUID
	typ      string
	json     bool
	created  int64 // .NET ticks since the Unix epoch, as the server reports it
	data     []byte
	meta     []byte
}

// proposed is one event of an append batch before it gets a place in the log.
type proposed struct {
	id   uuid.UUID
	typ  string
	json bool
	data []byte
	meta []byte
}

type streamState struct {
	events     []*record // index == revision; only ever appended to
	ids        map[uuid.UUID]int
	tombstoned bool
}

func (st *streamState) current() int64 {
	if st == nil {
		return -1
	}
	return int64(len(st.events)) - 1
}

type expectKind int

const (
	expectAny expectKind = iota
	expectNoStream
	expectExists
	expectRevision
)

type expectation struct {
	kind expectKind
	rev  uint64
}

// appendResult is what an append decided. current is the stream revision the
// answer reports (-1: no stream); last is the event whose position the answer
// reports (nil: none).
type appendResult struct {
	deleted bool
	wrong   bool
	current int64
	last    *record
}

// store is the in-memory log. It outlives the gRPC servers so Restart serves
// the same data.
type store struct {
	mu      sync.Mutex
	log     []*record // ordered by pos; only ever appended to
	streams map[string]*streamState
	next    uint64
	// wake is closed and replaced on every write so that each subscription can
	// follow the log at its own pace without the writer waiting for any of them.
	wake chan struct{}
}

func newStore(now time.Time) *store {
	s := &store{
		streams: make(map[string]*streamState),
		next:    logStart,
		wake:    make(chan struct{}),
	}
	// A real node's $all starts with system events; clients that read $all
	// must cope with them, so the fake has one too.
	s.write("$settings", []proposed{{id: uuid.New(), typ: "$settings", json: true, data: []byte("{}")}}, now)
	return s
}

func ticks(t time.Time) int64 { return t.UnixNano() / 100 }

// write appends evs to stream; the caller holds mu (or owns s exclusively).
func (s *store) write(stream string, evs []proposed, now time.Time) *record {
	st := s.streams[stream]
	if st == nil {
		st = &streamState{ids: make(map[uuid.UUID]int)}
		s.streams[stream] = st
	}
	var last *record
	for _, e := range evs {
		r := &record{
			stream:   stream,
			revision: uint64(len(st.events)),
			pos:      s.next,
			id:       e.id,
			typ:      e.typ,
			json:     e.json,
			created:  ticks(now),
			data:     e.data,
			meta:     e.meta,
		}
		s.next += recordOverhead + uint64(len(stream)+len(e.typ)+len(e.data)+len(e.meta))
		st.ids[e.id] = len(st.events)
		st.events = append(st.events, r)
		s.log = append(s.log, r)
		last = r
	}
	if last != nil {
		s.broadcast()
	}
	return last
}

func (s *store) broadcast() {
	close(s.wake)
	s.wake = make(chan struct{})
}

func (s *store) append(stream string, exp expectation, evs []proposed, now time.Time) appendResult {
	s.mu.Lock()
	defer s.mu.Unlock()

	st := s.streams[stream]
	if st != nil && st.tombstoned {
		return appendResult{deleted: true}
	}
	cur := st.current()
	wrong := appendResult{wrong: true, current: cur}

	switch exp.kind {
	case expectNoStream:
		return s.appendAt(stream, st, -1, evs, now)
	case expectRevision:
		if exp.rev > math.MaxInt64 {
			return wrong
		}
		return s.appendAt(stream, st, int64(exp.rev), evs, now)
	case expectExists:
		if cur < 0 {
			return wrong
		}
	}

	// Any (and StreamExists once the stream is known to exist): a real node
	// looks the first event id up among the stream's committed events; if it
	// is there, the batch was written before.
	if len(evs) > 0 && st != nil {
		if k, ok := st.ids[evs[0].id]; ok {
			for i, e := range evs {
				if k+i >= len(st.events) || st.events[k+i].id != e.id {
					// First id known but the rest differ: CorruptedIdempotency,
					// which a real node reports as a wrong expected version.
					return wrong
				}
			}
			lastRev := k + len(evs) - 1
			return appendResult{current: int64(lastRev), last: st.events[lastRev]}
		}
	}
	return s.commit(stream, st, evs, now)
}

// appendAt handles an exact expectation: r is the revision the stream must be
// at (-1: no stream).
func (s *store) appendAt(stream string, st *streamState, r int64, evs []proposed, now time.Time) appendResult {
	cur := st.current()
	switch {
	case r == cur:
		return s.commit(stream, st, evs, now)
	case r > cur || len(evs) == 0:
		return appendResult{wrong: true, current: cur}
	}
	// r < cur: the batch may be a retry of a write that already happened.
	for i, e := range evs {
		rev := r + 1 + int64(i)
		if rev > cur || st.events[rev].id != e.id {
			return appendResult{wrong: true, current: cur}
		}
	}
	lastRev := r + int64(len(evs))
	return appendResult{current: lastRev, last: st.events[lastRev]}
}

func (s *store) commit(stream string, st *streamState, evs []proposed, now time.Time) appendResult {
	if len(evs) == 0 {
		res := appendResult{current: st.current()}
		if st != nil && len(st.events) > 0 {
			res.last = st.events[len(st.events)-1]
		}
		return res
	}
	last := s.write(stream, evs, now)
	return appendResult{current: int64(last.revision), last: last}
}

// tombstone hard-deletes stream the way a real node does: it checks the
// expectation (no idempotency), then writes a $streamDeleted record to the log.
func (s *store) tombstone(stream string, exp expectation, now time.Time) (rec *record, res appendResult) {
	s.mu.Lock()
	defer s.mu.Unlock()

	st := s.streams[stream]
	if st != nil && st.tombstoned {
		return nil, appendResult{deleted: true}
	}
	cur := st.current()
	ok := true
	switch exp.kind {
	case expectNoStream:
		ok = cur == -1
	case expectExists:
		ok = cur >= 0
	case expectRevision:
		ok = exp.rev <= math.MaxInt64 && int64(exp.rev) == cur
	}
	if !ok {
		return nil, appendResult{wrong: true, current: cur}
	}
	if st == nil {
		st = &streamState{ids: make(map[uuid.UUID]int)}
		s.streams[stream] = st
	}
	st.tombstoned = true
	rec = &record{
		stream:   stream,
		revision: tombstoneRevision,
		pos:      s.next,
		id:       uuid.New(),
		typ:      "$streamDeleted",
		created:  ticks(now),
	}
	s.next += recordOverhead + uint64(len(stream)+len(rec.typ))
	s.log = append(s.log, rec)
	s.broadcast()
	return rec, appendResult{current: cur}
}

// streamEvents returns the stream's events as of now. The slice may be used
// without the lock: later writes only add elements past its length.
func (s *store) streamEvents(stream string) (events []*record, deleted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[stream]
	if st == nil {
		return nil, false
	}
	return st.events[:len(st.events):len(st.events)], st.tombstoned
}

// snapshot returns the log as of now; see streamEvents for why no lock is
// needed afterwards.
func (s *store) snapshot() []*record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log[:len(s.log):len(s.log)]
}

// since returns the records from index from on, and the channel that is
// closed on the next write, taken together so that no write can slip between.
func (s *store) since(from int) ([]*record, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log[from:len(s.log):len(s.log)], s.wake
}

// length is the number of records in the log.
func (s *store) length() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log)
}

// searchPos returns the index of the first record whose position is >= pos.
func searchPos(log []*record, pos uint64) int {
	return sort.Search(len(log), func(i int) bool { return log[i].pos >= pos })
}
