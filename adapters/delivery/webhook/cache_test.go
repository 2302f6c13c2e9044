package webhook

import (
	"fmt"
	"testing"
	"time"
)

func TestRouteCache(t *testing.T) {
	c := newRouteCache()
	if _, ok := c.endpoints("acme"); ok {
		t.Fatal("an empty cache has endpoints")
	}
	c.rememberEndpoints("acme", []target{{id: "e1"}})
	if got, ok := c.endpoints("acme"); !ok || len(got) != 1 {
		t.Fatalf("fresh endpoints: %v %v", got, ok)
	}
	// Creating or deleting an endpoint here drops every list at once.
	c.forgetEndpoints()
	if _, ok := c.endpoints("acme"); ok {
		t.Fatal("endpoints survived forgetEndpoints")
	}
	// Another process's change is seen once the list expires.
	c.rememberEndpoints("acme", nil)
	time.Sleep(targetsTTL + 50*time.Millisecond)
	if _, ok := c.endpoints("acme"); ok {
		t.Fatalf("endpoints outlived their %s", targetsTTL)
	}

	c.rememberCompany("c1", "acme")
	if got, ok := c.company("c1"); !ok || got != "acme" {
		t.Fatalf("company of c1: %q %v", got, ok)
	}
	for i := range maxCachedCustomers {
		c.rememberCompany(fmt.Sprint("x", i), "globex")
	}
	if len(c.companies) > maxCachedCustomers {
		t.Fatalf("the company map holds %d customers, the bound is %d", len(c.companies), maxCachedCustomers)
	}
}
