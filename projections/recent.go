package projections

import "sync"

// RecentCache keeps the values of recently used keys, up to about twice its
// size: a two-map approximation of LRU. Values go into hot; when hot is full
// it becomes cold and a new hot starts; a hit in cold moves back to hot. It
// is not safe for concurrent use.
type RecentCache[V any] struct {
	size      int
	hot, cold map[string]V
}

// NewRecentCache returns an empty cache whose hot half holds size values.
func NewRecentCache[V any](size int) *RecentCache[V] {
	return &RecentCache[V]{size: max(size, 1), hot: make(map[string]V)}
}

// Get returns the value kept for key.
func (c *RecentCache[V]) Get(key string) (V, bool) {
	if v, ok := c.hot[key]; ok {
		return v, true
	}
	v, ok := c.cold[key]
	if ok {
		delete(c.cold, key)
		c.Put(key, v)
	}
	return v, ok
}

// Put keeps v for key.
func (c *RecentCache[V]) Put(key string, v V) {
	if len(c.hot) >= c.size {
		c.cold, c.hot = c.hot, make(map[string]V, c.size)
	}
	c.hot[key] = v
}

// generationCaches keeps one RecentCache per generation, for projections
// that remember between batches what they wrote. A generation's cache is
// used by the one runner applying that generation, so the caches need no
// lock of their own; the map of them does, since a rebuild's runner and the
// live one work on two generations at once.
type generationCaches[V any] struct {
	size  int
	mu    sync.Mutex
	byGen map[Generation]*RecentCache[V]
}

func newGenerationCaches[V any](size int) *generationCaches[V] {
	return &generationCaches[V]{size: size, byGen: map[Generation]*RecentCache[V]{}}
}

// of returns gen's cache, empty the first time.
func (g *generationCaches[V]) of(gen Generation) *RecentCache[V] {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.byGen[gen]
	if c == nil {
		c = NewRecentCache[V](g.size)
		g.byGen[gen] = c
	}
	return c
}

// forget drops gen's cache.
func (g *generationCaches[V]) forget(gen Generation) {
	g.mu.Lock()
	delete(g.byGen, gen)
	g.mu.Unlock()
}
