package webhook

import (
	"sync"
	"time"
)

// The fan-out looks up, for every event on the bus, the customer's company
// and the company's endpoints. Done in the database each time, that bounds
// the relay on the in-process channel (whose Publish waits for the fan-out)
// at a few thousand events a second. routeCache keeps both in memory:
//   - a customer's company never changes, so a remembered one stays right;
//   - endpoints do change, possibly in another process sharing the
//     database, so a company's list is kept for targetsTTL at most, and
//     dropped at once when this process creates or deletes an endpoint. An
//     endpoint created in another process starts getting events within
//     targetsTTL.
type routeCache struct {
	mu        sync.Mutex
	companies map[string]string
	targets   map[string]cachedTargets
}

type cachedTargets struct {
	list  []target
	until time.Time
}

const (
	targetsTTL = time.Second
	// maxCachedCustomers bounds the memory the company map takes; when it
	// is full it starts over, which costs one lookup per customer again.
	maxCachedCustomers = 200_000
)

func newRouteCache() *routeCache {
	return &routeCache{companies: map[string]string{}, targets: map[string]cachedTargets{}}
}

func (c *routeCache) company(customer string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	company, ok := c.companies[customer]
	return company, ok
}

func (c *routeCache) rememberCompany(customer, company string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.companies) >= maxCachedCustomers {
		c.companies = map[string]string{}
	}
	c.companies[customer] = company
}

// endpoints are a company's cached targets, if still fresh. The TTL runs on
// the wall clock, not the service's clock, which tests stop.
func (c *routeCache) endpoints(company string) ([]target, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.targets[company]
	if !ok || time.Now().After(t.until) {
		return nil, false
	}
	return t.list, true
}

func (c *routeCache) rememberEndpoints(company string, list []target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.targets[company] = cachedTargets{list: list, until: time.Now().Add(targetsTTL)}
}

func (c *routeCache) forgetEndpoints() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.targets)
}
