package projections

import "testing"

func TestRecentCache(t *testing.T) {
	c := NewRecentCache[int](2)
	c.Put("a", 1)
	c.Put("b", 2)
	c.Put("c", 3) // hot was full: a and b go cold
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("a from the cold half: %d, %v", v, ok)
	}
	// a moved back to hot (with c); the next put that fills hot drops b.
	c.Put("d", 4)
	if _, ok := c.Get("b"); ok {
		t.Fatal("b kept after two turnovers without a hit")
	}
	for key, want := range map[string]int{"a": 1, "c": 3, "d": 4} {
		if v, ok := c.Get(key); !ok || v != want {
			t.Errorf("%s: %d, %v; want %d", key, v, ok, want)
		}
	}
	if _, ok := c.Get("e"); ok {
		t.Error("e was never put")
	}
}
