package projections

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kycengine/kyc/domain"
)

func TestHoldAfter(t *testing.T) {
	const ms = time.Millisecond
	scaled := func(d time.Duration, logFactor float64) time.Duration {
		return time.Duration(float64(d) * math.Exp(logFactor))
	}
	rise := lateStep * lateShare / (1 - lateShare)
	for _, tc := range []struct {
		name            string
		threshold       time.Duration
		late, onTime    int
		want            time.Duration
		wantApproximate bool
	}{
		{"a late event lowers it by lateStep", 40 * ms, 1, 0, scaled(40*ms, -lateStep), false},
		{"each late event counts", 40 * ms, 10, 0, scaled(40*ms, -10*lateStep), false},
		{"an event in time raises it a little", 40 * ms, 0, 1, scaled(40*ms, rise), false},
		{"lateShare late leaves it where it is", 40 * ms, 1, 199, 40 * ms, true},
		{"never above MaxLag", 50 * ms, 0, 100000, 50 * ms, false},
		{"never below MaxLag/holdFloor", 50 * ms / holdFloor * 6 / 5, 1000, 0, 50 * ms / holdFloor, false},
		{"from the floor it rises", 50 * ms / holdFloor, 0, 1000, scaled(50*ms/holdFloor, 1000*rise), false},
		{"an empty batch changes nothing", 40 * ms, 0, 0, 40 * ms, false},
	} {
		got := holdAfter(tc.threshold, tc.late, tc.onTime, 50*ms)
		if tc.wantApproximate {
			if math.Abs(float64(got-tc.want)) > float64(time.Microsecond) {
				t.Errorf("%s: holdAfter(%s, %d late, %d in time) = %s, want about %s", tc.name, tc.threshold, tc.late, tc.onTime, got, tc.want)
			}
		} else if got != tc.want {
			t.Errorf("%s: holdAfter(%s, %d late, %d in time) = %s, want %s", tc.name, tc.threshold, tc.late, tc.onTime, got, tc.want)
		}
	}
}

// TestHoldSettlesOnTheLateShare runs the threshold on batches whose events
// are late at random, at a fixed share: above lateShare it must end at the
// floor, below it at MaxLag. A threshold that followed batches instead of
// events, or whose rise and fall did not balance at lateShare, ends
// elsewhere.
func TestHoldSettlesOnTheLateShare(t *testing.T) {
	const maxLag = 50 * time.Millisecond
	for _, tc := range []struct {
		share float64
		want  time.Duration
	}{
		{lateShare * 2, maxLag / holdFloor},
		{lateShare / 2, maxLag},
	} {
		r := rand.New(rand.NewPCG(1, uint64(tc.share*1e6)))
		threshold := maxLag * 3 / 10
		for range 20000 {
			size := 1 + r.IntN(64)
			late := 0
			for range size {
				if r.Float64() < tc.share {
					late++
				}
			}
			threshold = holdAfter(threshold, late, size-late, maxLag)
		}
		// The last batches move it a little off its bound.
		if math.Abs(float64(threshold-tc.want)) > 0.25*float64(tc.want) {
			t.Errorf("%.2f%% of events late: threshold ends at %s, want about %s", tc.share*100, threshold, tc.want)
		}
	}
}

func TestLateEvents(t *testing.T) {
	now := time.Now()
	at := func(ago time.Duration) domain.RecordedEvent { return domain.RecordedEvent{RecordedAt: now.Add(-ago)} }
	batch := []domain.RecordedEvent{at(80 * time.Millisecond), at(50 * time.Millisecond), at(51 * time.Millisecond), at(time.Millisecond)}
	if got := lateEvents(batch, now, 50*time.Millisecond); got != 2 {
		t.Errorf("lateEvents = %d, want 2 (80ms and 51ms old; 50ms is in time)", got)
	}
}
