package projections_test

import (
	"math/rand/v2"
	"slices"
	"strings"
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

// TestSearchWords: how a free-text query becomes the prefixes that must
// each start a search term. Phone terms are digits only (an E.164 number
// without its "+"), so a number typed the way people write one, with a
// country code and spaces, must become one word of its digits.
func TestSearchWords(t *testing.T) {
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"", nil},
		{"  Ann   SMITH ", []string{"ann", "smith"}},
		{"ann Ann", []string{"ann"}},
		{"ann@example.com", []string{"ann@example.com"}},
		{"+447700900123", []string{"447700900123"}},
		{"+44 7700 900123", []string{"447700900123"}},
		{"+1 (555) 010-9999", []string{"15550109999"}},
		{"+44 7700 ann 900123", []string{"447700", "ann", "900123"}},
		{"ann +44 7700", []string{"ann", "447700"}},
		{"+44 1 +33 2", []string{"441", "332"}},
		{"010-9999", []string{"0109999"}},
		{"(555)", []string{"555"}},
		{"2024 0001", []string{"2024", "0001"}}, // numbers without a "+" stay apart: id numbers, public ids
		{"+", []string{"+"}},
		{"+ 44", []string{"+", "44"}},
		{"cus-0193", []string{"cus-0193"}},
		{"0193-ab", []string{"0193-ab"}},
		// Digits of other scripts are not phone digits: kept as typed, they
		// match nothing, rather than vanish and let the query match everyone.
		{"٣-٤", []string{"٣-٤"}},
		{"+٤٤", []string{"+٤٤"}},
	} {
		if got := projections.SearchWords(tc.q); !slices.Equal(got, tc.want) {
			t.Errorf("SearchWords(%q) = %q, want %q", tc.q, got, tc.want)
		}
	}
}

// FuzzSearchWords: whatever the query, its words are distinct and not
// empty, and a query with anything but spaces in it keeps at least one word
// (a query that lost all its words would match every customer).
func FuzzSearchWords(f *testing.F) {
	for _, q := range []string{"ann", "+44 7700 900123", "+1 (555) 010-9999", "\u0663-\u0664", "+ - ( )", "cus-0193 ann"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		words := projections.SearchWords(q)
		if (len(words) == 0) != (len(strings.Fields(strings.ToLower(q))) == 0) {
			t.Fatalf("SearchWords(%q) = %q", q, words)
		}
		for i, w := range words {
			if w == "" || slices.Contains(words[:i], w) {
				t.Fatalf("SearchWords(%q) = %q: an empty or repeated word", q, words)
			}
		}
	})
}
