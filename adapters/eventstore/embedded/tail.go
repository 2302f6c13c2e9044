package embedded

import (
	"bytes"
	"sort"
	"sync"

	"github.com/kycengine/kyc/domain"
)

// tailIndex is the writer's record of the newest events, shared with this
// process's readers. It holds every event that is not in stream_index yet,
// so readers read a stream through stream_index and this and never scan the
// log's tail (readers in other processes, which cannot see it, scan the tail
// in SQL). It also keeps up to keep events that are indexed already:
// the newest events are the ones read most (the command service reads back
// what it just appended, and asks for anything after the revision it has
// cached), and SQLite would have to fetch them from the WAL.
//
// For each stream it holds a run of consecutive revisions up to the newest:
// it drops a stream's events oldest first, and only indexed ones.
//
// The writer adds a transaction's events after the transaction commits and
// before it can become durable, and drops them only after a commit that
// indexed them; a reader looks here first and in stream_index second. So an
// event a reader may see (durable) is always in one or the other, possibly
// in both, and a reader drops what it finds twice.
type tailIndex struct {
	mu      sync.RWMutex
	streams map[string][]tailEntry // each in revision order
	// order is every entry in position order (a queue from head), for
	// dropping the oldest first.
	order   []tailEvent
	head    int
	indexed int64 // entries at or before this position are in stream_index
	// keep is how many indexed events to keep for readers.
	keep int
}

// defaultKeepIndexed is how many indexed events tailIndex keeps by default.
const defaultKeepIndexed = 4096

type tailEntry struct {
	revision uint64
	position int64
	event    *domain.RecordedEvent // readers copy it, see copyEvent
}

// copyEvent returns a copy of the entry's event that the caller may change.
func (e tailEntry) copyEvent() domain.RecordedEvent {
	c := *e.event
	c.Data = bytes.Clone(c.Data)
	c.Personal = bytes.Clone(c.Personal)
	return c
}

// tailEvent is an entry and its stream.
type tailEvent struct {
	stream string
	tailEntry
}

// add records a committed transaction's events.
func (t *tailIndex) add(events []tailEvent) {
	if len(events) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.streams == nil {
		t.streams = make(map[string][]tailEntry)
	}
	for _, e := range events {
		t.streams[e.stream] = append(t.streams[e.stream], e.tailEntry)
	}
	t.order = append(t.order, events...)
	t.trim()
}

// markIndexed records that every event up to position through is in
// stream_index.
func (t *tailIndex) markIndexed(through int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.indexed = max(t.indexed, through)
	t.trim()
}

func (t *tailIndex) trim() {
	for len(t.order)-t.head > t.keep && t.order[t.head].position <= t.indexed {
		e := t.order[t.head]
		t.order[t.head] = tailEvent{}
		t.head++
		// The queue's head is its stream's oldest entry.
		if rest := t.streams[e.stream][1:]; len(rest) > 0 {
			t.streams[e.stream] = rest
		} else {
			delete(t.streams, e.stream)
		}
	}
	if t.head > len(t.order)/2 {
		t.order = append(t.order[:0], t.order[t.head:]...)
		t.head = 0
	}
}

// span appends to dst the stream's entries with revisions from lo to hi and
// positions at or before visible, only the newest n of them when n > 0.
// first is the revision of the stream's oldest entry at or before visible,
// and ok says whether it has one: below first, the stream's events are in
// stream_index.
func (t *tailIndex) span(dst []tailEntry, stream string, lo, hi uint64, n int, visible int64) (out []tailEntry, first uint64, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	es := t.streams[stream]
	// Positions grow with revisions: what is not visible is at the end.
	es = es[:sort.Search(len(es), func(i int) bool { return es[i].position > visible })]
	if len(es) == 0 {
		return dst, 0, false
	}
	from := sort.Search(len(es), func(i int) bool { return es[i].revision >= lo })
	to := sort.Search(len(es), func(i int) bool { return es[i].revision > hi })
	if n > 0 && to-from > n {
		from = to - n
	}
	if from < to {
		dst = append(dst, es[from:to]...)
	}
	return dst, es[0].revision, true
}
