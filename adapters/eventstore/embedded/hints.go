package embedded

import (
	"sync"

	"github.com/kycengine/kyc/domain"
)

// headHints shares recently committed stream heads with Append, so callers
// can compute their events' chain hashes on their own goroutines instead of
// the writer's, which is the store's bottleneck. A hint is only a guess: the
// writer checks it against the head it knows and hashes anew when it is
// wrong, so a stale or missing hint costs time, never correctness.
type headHints struct {
	mu sync.RWMutex
	m  map[string]streamHead
}

// maxHints bounds the map; when it is full it starts over.
const maxHints = 1 << 14

// update records the heads a commit moved.
func (h *headHints) update(heads map[string]streamHead) {
	if len(heads) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil || len(h.m)+len(heads) > maxHints {
		h.m = make(map[string]streamHead, len(heads))
	}
	for k, v := range heads {
		h.m[k] = v
	}
}

// precompute appends the chain hashes of events to dst, on the guess it
// stores in guess, or returns dst unchanged when there is nothing to guess
// from.
func (h *headHints) precompute(dst []string, guess *streamHead, stream string, expected domain.ExpectedRevision, events []domain.EventData) []string {
	h.mu.RLock()
	g, ok := h.m[stream]
	h.mu.RUnlock()
	if !ok {
		if !expected.IsNoStream() {
			return dst
		}
		g = streamHead{} // a new stream is a fine guess for "no stream"
	}
	if !expected.Allows(g.last, g.exists) {
		return dst // the writer will most likely refuse it anyway
	}
	*guess = g
	prev, rev := g.hash, uint64(0)
	if g.exists {
		rev = g.last + 1
	}
	for _, e := range events {
		prev = domain.ChainHash(prev, stream, rev, e)
		dst = append(dst, prev)
		rev++
	}
	return dst
}
