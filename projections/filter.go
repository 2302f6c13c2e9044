package projections

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/kycengine/kyc/domain"
)

// This file defines what the list's filters and sorts mean, in plain Go.
// Stores translate the same rules into their query language; the
// conformance suite checks them against Matches and Less on random data.

// SearchTerms are the lower-cased words free-text search matches against:
// first and last name, id card number, emails, phone numbers (digits only),
// public id and customer id.
func SearchTerms(c *domain.Customer) []string {
	var terms []string
	add := func(s string) {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" && !slices.Contains(terms, s) {
			terms = append(terms, s)
		}
	}
	if c.Name != nil {
		for _, w := range strings.Fields(c.Name.First + " " + c.Name.Last) {
			add(w)
		}
	}
	add(c.IDCardNumber)
	for _, e := range c.Emails {
		add(e)
	}
	for _, p := range c.Phones {
		add(digits(p))
	}
	add(c.PublicID)
	add(c.ID)
	return terms
}

// SearchWords splits a free-text query into the prefixes every one of which
// must match a search term. A word that looks like a phone number keeps only
// its digits, as phone terms do; a number written with its country code and
// spaces ("+44 7700 900123") is one word, up to the next word that is not
// a part of a number or starts another "+": the phone term it must start is
// the whole number.
func SearchWords(q string) []string {
	var words []string
	add := func(w string) {
		if w != "" && !slices.Contains(words, w) {
			words = append(words, w)
		}
	}
	fields := strings.Fields(strings.ToLower(q))
	for i := 0; i < len(fields); i++ {
		w := fields[i]
		if !looksLikePhone(w) {
			add(w)
			continue
		}
		number := digits(w)
		if strings.HasPrefix(w, "+") {
			for ; i+1 < len(fields) && isPhoneGroup(fields[i+1]) && !strings.HasPrefix(fields[i+1], "+"); i++ {
				number += digits(fields[i+1])
			}
		}
		add(number)
	}
	return words
}

// looksLikePhone: digits with at least one of the signs people write phone
// numbers with. Only ASCII digits count: phone terms keep no others, and a
// word that lost every character would drop out of the query and widen it.
func looksLikePhone(w string) bool {
	return isPhoneGroup(w) && strings.ContainsAny(w, "+-().")
}

// isPhoneGroup: a part of a phone number as written, digits and signs only.
func isPhoneGroup(w string) bool {
	hasDigit := false
	for _, r := range w {
		switch {
		case r >= '0' && r <= '9':
			hasDigit = true
		case r == '+' || r == '-' || r == '(' || r == ')' || r == '.':
		default:
			return false
		}
	}
	return hasDigit
}

func digits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

// DisplayName is the name as one string, "" when unknown.
func DisplayName(c *domain.Customer) string {
	if c.Name == nil {
		return ""
	}
	return strings.TrimSpace(c.Name.First + " " + c.Name.Last)
}

// NameSortKey is what the name sort orders by.
func NameSortKey(c *domain.Customer) string { return strings.ToLower(DisplayName(c)) }

// Country is the country of the customer's address.
func Country(c *domain.Customer) string {
	if c.Address == nil {
		return ""
	}
	return c.Address.Country
}

// LastStatusUpdate is the time of the last status change, zero when none.
func LastStatusUpdate(c *domain.Customer) time.Time {
	if c.LastStatusUpdate == nil {
		return time.Time{}
	}
	return *c.LastStatusUpdate
}

// Matches reports whether a row passes every filter of q.
func (q ListQuery) Matches(r CustomerRow) bool {
	c := r.Customer
	anyOf := func(set []string, v string) bool { return len(set) == 0 || slices.Contains(set, v) }
	anyIn := func(set, vs []string) bool {
		return len(set) == 0 || slices.ContainsFunc(vs, func(v string) bool { return slices.Contains(set, v) })
	}
	if q.ScopeCompany != "" && c.CompanyID != q.ScopeCompany {
		return false
	}
	if words := SearchWords(q.Q); len(words) > 0 {
		terms := SearchTerms(c)
		for _, w := range words {
			if !slices.ContainsFunc(terms, func(t string) bool { return strings.HasPrefix(t, w) }) {
				return false
			}
		}
	}
	if !anyOf(q.Statuses, c.Status) || !anyOf(q.Companies, c.CompanyID) || !anyOf(q.Nationalities, c.Nationality) ||
		!anyOf(q.Risks, c.Risk) || !anyOf(q.VideoCallStatuses, c.VideoCallStatus) ||
		!anyOf(q.VerificationStatuses, r.VerificationStatus) || !anyOf(q.States, r.State) ||
		!anyOf(q.Countries, Country(c)) || !anyOf(q.Agents, c.CreatedByAgent) || !anyOf(q.ReferralCodes, c.ReferralCode) {
		return false
	}
	if len(q.VerificationLevels) > 0 && !slices.Contains(q.VerificationLevels, c.VerificationLevel) {
		return false
	}
	if !q.Created.IsZero() && !q.Created.Contains(c.CreatedAt) {
		return false
	}
	if !q.Updated.IsZero() && (c.LastStatusUpdate == nil || !q.Updated.Contains(*c.LastStatusUpdate)) {
		return false
	}
	if !anyIn(q.Tags, c.Tags) || !anyIn(q.AccessRoles, c.AccessRoles) || !anyIn(q.AccessGroups, c.AccessGroups) {
		return false
	}
	if len(q.DocumentTypes) > 0 && !slices.ContainsFunc(c.Documents, func(d domain.Document) bool {
		return slices.Contains(q.DocumentTypes, d.Type)
	}) {
		return false
	}
	if !q.Expiry.IsZero() && !slices.ContainsFunc(c.Documents, func(d domain.Document) bool {
		return q.Expiry.Contains(d.ExpiryDate)
	}) {
		return false
	}
	if q.AgeMin != nil || q.AgeMax != nil {
		after, onOrBefore := q.BirthBounds()
		if c.BirthDate == "" || (after != "" && c.BirthDate <= after) || (onOrBefore != "" && c.BirthDate > onOrBefore) {
			return false
		}
	}
	return true
}

// Compare orders two rows as q's sort says, ties broken by Seq in the same
// direction, so every row has one place and pages never overlap.
func (q ListQuery) Compare(a, b CustomerRow) int {
	var c int
	switch q.Sort {
	case SortName:
		c = strings.Compare(NameSortKey(a.Customer), NameSortKey(b.Customer))
	case SortLastStatusUpdate:
		c = LastStatusUpdate(a.Customer).Compare(LastStatusUpdate(b.Customer))
	default:
		c = a.Customer.CreatedAt.Compare(b.Customer.CreatedAt)
	}
	if c == 0 {
		c = cmp.Compare(a.Seq, b.Seq)
	}
	if q.Desc {
		return -c
	}
	return c
}
