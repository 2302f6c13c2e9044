package projections

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
