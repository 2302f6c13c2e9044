package projections

import (
	"testing"
	"time"
)

func TestHoldAfter(t *testing.T) {
	const ms = time.Millisecond
	for _, tc := range []struct {
		name                    string
		threshold, visible, lag time.Duration
		want                    time.Duration
	}{
		{"a late batch lowers it by a quarter", 40 * ms, 60 * ms, 50 * ms, 30 * ms},
		{"an on-time batch raises it by 0.5%", 40 * ms, 20 * ms, 50 * ms, 40*ms + 200*time.Microsecond + 1},
		{"exactly on time counts as on time", 40 * ms, 50 * ms, 50 * ms, 40*ms + 200*time.Microsecond + 1},
		{"from nothing it still grows", 0, 0, 50 * ms, 1},
		{"never above MaxLag", 50 * ms, 1 * ms, 50 * ms, 50 * ms},
		{"never below a tenth of MaxLag", 6 * ms, time.Second, 50 * ms, 5 * ms},
		{"back up from the floor", 5 * ms, 0, 50 * ms, 5*ms + 25*time.Microsecond + 1},
	} {
		if got := holdAfter(tc.threshold, tc.visible, tc.lag); got != tc.want {
			t.Errorf("%s: holdAfter(%s, %s, %s) = %s, want %s", tc.name, tc.threshold, tc.visible, tc.lag, got, tc.want)
		}
	}
	// From the floor, on-time batches bring it back to MaxLag.
	d := 5 * ms
	for range 1000 {
		d = holdAfter(d, 0, 50*ms)
	}
	if d != 50*ms {
		t.Errorf("after 1000 on-time batches from the floor: %s, want 50ms", d)
	}
}
