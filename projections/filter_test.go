package projections_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// TestAgeFilterAgreesWithAge: the age filter, which every read-model store
// turns into bounds on the birth date, keeps exactly the customers whose
// age (domain.Customer.Age, as the profile shows it) is within the bounds.
// The read-model suite compares the stores with ListQuery.Matches on random
// data, which seldom lands on a birthday; this test lands on them on
// purpose: birthdays today, yesterday and tomorrow, and 29 February.
func TestAgeFilterAgreesWithAge(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	days := []time.Time{
		time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC),
		time.Date(2027, 2, 28, 23, 59, 0, 0, time.UTC),
		time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2028, 2, 29, 12, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC),
	}
	bound := func() *int {
		if rng.IntN(4) == 0 {
			return nil
		}
		n := rng.IntN(60)
		return &n
	}
	for range 20000 {
		now := days[rng.IntN(len(days))]
		years := rng.IntN(70)
		birth := now.AddDate(-years, 0, rng.IntN(3)-1)
		if rng.IntN(10) == 0 {
			birth = time.Date(now.Year()-years, 2, 29, 0, 0, 0, 0, time.UTC) // may roll to 1 March: both matter
		}
		c := &domain.Customer{BirthDate: birth.Format(time.DateOnly)}
		q := projections.ListQuery{AgeMin: bound(), AgeMax: bound(), Now: now}
		if q.AgeMin == nil && q.AgeMax == nil {
			continue
		}
		age := c.Age(now)
		want := (q.AgeMin == nil || age >= *q.AgeMin) && (q.AgeMax == nil || age <= *q.AgeMax)
		if got := q.Matches(projections.CustomerRow{Customer: c}); got != want {
			t.Fatalf("born %s, now %s, age %d, bounds [%v, %v]: matches %v, want %v",
				c.BirthDate, now.Format(time.RFC3339), age, show(q.AgeMin), show(q.AgeMax), got, want)
		}
	}
}

func show(n *int) any {
	if n == nil {
		return "open"
	}
	return *n
}
