package readtest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// Value pools of the random data. They are small so that filters match
// several customers, and hold the awkward cases: non-ASCII names, a video
// call status with a space, unset risk, unknown birth dates.
var (
	firstNames    = []string{"Ana", "Bruno", "Chloé", "Dmitri", "Émile", "Fatima", "Günther", "Hiro", "Ines", "Jürgen", "Ana María", "Zoë", "Øyvind", "李", "O'Neil"}
	lastNames     = []string{"Silva", "Smith", "Müller", "Dubois", "Kowalski", "Nakamura", "Ñúñez", "van der Berg", "Smithson", "O'Brien", "Ålund"}
	companies     = []string{"acme", "globex", "initech", "umbrella"}
	statuses      = []string{"pending", "approved", "rejected", "in_review", "active", "blocked", "suspended"}
	nationalities = []string{"PT", "ES", "FR", "DE", "PL", "JP", "US", ""}
	countries     = []string{"PT", "ES", "FR", "DE", "GB", ""}
	risks         = []string{"", domain.RiskNormal, domain.RiskHigh, domain.RiskVeryHigh}
	states        = []string{"", "active", "blocked", "suspended"}
	aggregated    = []string{"pending", "active", "blocked", "suspended"}
	tags          = []string{"vip", "pep", "watch", "new", "legacy"}
	accessRoles   = []string{"admin", "reviewer", "viewer"}
	accessGroups  = []string{"north", "south", "east", "west"}
	agents        = []string{"", "agent-1", "agent-2", "agent-3"}
	referrals     = []string{"", "REF1", "REF2", "SUMMER"}
	docTypes      = []string{"passport", "id_card", "driving_license", "utility_bill"}
	auditTypes    = []string{"CustomerRegistered", "StatusChanged", "ProfileUpdated", "TagsChanged", "NoteAdded"}
	actors        = []string{"op-1", "op-2", "op-3", "system"}
)

// now is the fixed time of every query; data spreads over the year before.
var now = time.Date(2025, 6, 15, 12, 0, 0, 0, time.UTC)

func pick[T any](rng *rand.Rand, vs []T) T { return vs[rng.IntN(len(vs))] }

// subset picks up to max distinct values, possibly none.
func subset[T comparable](rng *rand.Rand, vs []T, max int) []T {
	var out []T
	for range rng.IntN(max + 1) {
		v := pick(rng, vs)
		dup := false
		for _, o := range out {
			dup = dup || o == v
		}
		if !dup {
			out = append(out, v)
		}
	}
	return out
}

func randomTime(rng *rand.Rand) time.Time {
	// Nanosecond resolution, so a store that rounds times is caught.
	return now.Add(-time.Duration(rng.Int64N(int64(365 * 24 * time.Hour))))
}

func randomDate(rng *rand.Rand, fromYear, years int) string {
	if rng.IntN(40) == 0 {
		return fmt.Sprintf("%04d-02-29", fromYear+4*rng.IntN(years/4+1))
	}
	return fmt.Sprintf("%04d-%02d-%02d", fromYear+rng.IntN(years), 1+rng.IntN(12), 1+rng.IntN(28))
}

// randomCustomer makes customer number i.
func randomCustomer(rng *rand.Rand, i int) projections.CustomerRow {
	c := &domain.Customer{
		ID:                fmt.Sprintf("cus-%05d-%d", i, rng.IntN(1000)),
		PublicID:          fmt.Sprintf("P%06d", rng.IntN(1000000)),
		CompanyID:         pick(rng, companies),
		Lifecycle:         "onboarding",
		LifecycleVersion:  1,
		Status:            pick(rng, statuses),
		Nationality:       pick(rng, nationalities),
		Emails:            []string{},
		Phones:            []string{},
		ReferralCode:      pick(rng, referrals),
		CreatedByAgent:    pick(rng, agents),
		AccessRoles:       subset(rng, accessRoles, 2),
		AccessGroups:      subset(rng, accessGroups, 2),
		Tags:              subset(rng, tags, 3),
		Risk:              pick(rng, risks),
		VideoCallStatus:   pick(rng, append([]string{""}, domain.VideoCallStatuses...)),
		VerificationLevel: rng.IntN(6),
		EmailVerified:     rng.IntN(2) == 0,
		PhoneVerified:     rng.IntN(2) == 0,
		ActiveServices:    subset(rng, domain.Services, 2),
		CreatedAt:         randomTime(rng),
		Revision:          uint64(1 + rng.IntN(50)),
	}
	c.CompanyName = "Company " + c.CompanyID
	if rng.IntN(10) > 0 {
		c.Name = &domain.Name{First: pick(rng, firstNames), Last: pick(rng, lastNames)}
	}
	if rng.IntN(2) == 0 {
		c.IDCardNumber = fmt.Sprintf("ID%07d", rng.IntN(10000000))
	}
	if rng.IntN(5) > 0 {
		c.BirthDate = randomDate(rng, 1940, 70)
	}
	if c.BirthDate != "" && i%5 == 0 {
		// A birthday on the day the queries run, or the day before or
		// after: where the age filter's bounds lie.
		year, _ := strconv.Atoi(c.BirthDate[:4])
		c.BirthDate = time.Date(year, now.Month(), now.Day()+(i/5)%3-1, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
	}
	for range rng.IntN(3) {
		c.Emails = append(c.Emails, fmt.Sprintf("user%d@%s.example", rng.IntN(1000), pick(rng, companies)))
	}
	for range rng.IntN(3) {
		c.Phones = append(c.Phones, fmt.Sprintf("+351 9%02d %03d %03d", rng.IntN(100), rng.IntN(1000), rng.IntN(1000)))
	}
	if rng.IntN(4) > 0 {
		c.Address = &domain.Address{Country: pick(rng, countries), City: "Lisbon", Lines: []string{"Rua 1"}}
	}
	if rng.IntN(3) > 0 {
		aml := rng.IntN(2) == 0
		c.AMLStatus = &aml
	}
	for d := range rng.IntN(4) {
		doc := domain.Document{ID: fmt.Sprintf("doc-%d", d), Type: pick(rng, docTypes), Country: "PT"}
		if rng.IntN(4) > 0 {
			doc.ExpiryDate = randomDate(rng, 2020, 15)
		}
		if rng.IntN(2) == 0 {
			doc.ReviewDecision = domain.DecisionApproved
		}
		c.Documents = append(c.Documents, doc)
	}
	if rng.IntN(3) > 0 {
		t := randomTime(rng)
		c.LastStatusUpdate = &t
	}
	c.Notes = []domain.Note{{ID: "n1", Text: "note", Author: "op-1", CreatedAt: c.CreatedAt}}
	c.Rules = []domain.StepResult{{Step: "aml", Result: "clear", Details: json.RawMessage(`{"score":1}`), RecordedAt: c.CreatedAt}}
	return projections.CustomerRow{
		Customer:           c,
		VerificationStatus: c.VerificationStatus(),
		State:              pick(rng, states),
		AggregatedStatus:   pick(rng, aggregated),
	}
}

// mutate changes a customer as later events would, company included, so a
// store must rewrite its terms and move its counts.
func mutate(rng *rand.Rand, r projections.CustomerRow) projections.CustomerRow {
	c := *r.Customer
	c.Status = pick(rng, statuses)
	c.Tags = subset(rng, tags, 3)
	c.AccessRoles = subset(rng, accessRoles, 2)
	if rng.IntN(2) == 0 {
		c.Name = &domain.Name{First: pick(rng, firstNames), Last: pick(rng, lastNames)}
	}
	if rng.IntN(3) == 0 {
		c.CompanyID = pick(rng, companies)
	}
	if rng.IntN(2) == 0 {
		c.Documents = append(append([]domain.Document(nil), c.Documents...),
			domain.Document{ID: "doc-new", Type: pick(rng, docTypes), ExpiryDate: randomDate(rng, 2020, 15)})
	}
	t := randomTime(rng)
	c.LastStatusUpdate = &t
	c.Revision++
	r.Customer = &c
	r.State = pick(rng, states)
	return r
}

// randomQuery adds 1 to 4 random filters, or none, to a query with a random
// sort and page.
func randomQuery(rng *rand.Rand, rows []projections.CustomerRow) projections.ListQuery {
	q := projections.ListQuery{
		Sort:    pick(rng, projections.SortKeys),
		Desc:    rng.IntN(2) == 0,
		PerPage: pick(rng, projections.PageSizes),
		Now:     now,
	}
	q.Page = 1 + rng.IntN(4)
	if rng.IntN(10) == 0 {
		q.Page = 20 + rng.IntN(20) // past the end
	}
	n := rng.IntN(5)
	if rng.IntN(10) == 0 {
		n = 0
	}
	for range n {
		pick(rng, filters)(rng, &q, rows)
	}
	if rng.IntN(4) == 0 {
		q.ScopeCompany = pick(rng, companies)
	}
	return q
}

type filterFunc func(rng *rand.Rand, q *projections.ListQuery, rows []projections.CustomerRow)

var filters = []filterFunc{
	func(rng *rand.Rand, q *projections.ListQuery, rows []projections.CustomerRow) {
		q.Q = searchPrefix(rng, rows)
		if rng.IntN(3) == 0 {
			q.Q += " " + searchPrefix(rng, rows)
		}
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.Statuses = nonEmpty(rng, statuses, 3)
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.Created = timeRange(rng)
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.Updated = timeRange(rng)
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.Companies = nonEmpty(rng, companies, 2)
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.DocumentTypes = nonEmpty(rng, docTypes, 2)
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.Nationalities = nonEmpty(rng, nationalities, 3)
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.Expiry = projections.DateRange{From: randomDate(rng, 2020, 15), To: randomDate(rng, 2020, 15)}
		switch rng.IntN(3) {
		case 0:
			q.Expiry.From = ""
		case 1:
			q.Expiry.To = ""
		}
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.Risks = nonEmpty(rng, risks, 2)
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		lo, hi := 18+rng.IntN(40), 30+rng.IntN(60)
		switch rng.IntN(3) {
		case 0:
			q.AgeMin = &lo
		case 1:
			q.AgeMax = &hi
		default:
			q.AgeMin, q.AgeMax = &lo, &hi
		}
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.VideoCallStatuses = nonEmpty(rng, append([]string{"BAD QUALITY"}, domain.VideoCallStatuses...), 3)
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.VerificationLevels = nonEmpty(rng, []int{0, 1, 2, 3, 4, 5}, 3)
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.VerificationStatuses = nonEmpty(rng, []string{domain.VerificationIdentified, domain.VerificationPhoneVerified,
			domain.VerificationEmailVerified, domain.VerificationNotVerified}, 2)
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.States = nonEmpty(rng, states, 2)
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.Countries = nonEmpty(rng, countries, 2)
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.Tags = nonEmpty(rng, tags, 2)
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.AccessRoles = nonEmpty(rng, accessRoles, 2)
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.AccessGroups = nonEmpty(rng, accessGroups, 2)
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.Agents = nonEmpty(rng, agents, 2)
	},
	func(rng *rand.Rand, q *projections.ListQuery, _ []projections.CustomerRow) {
		q.ReferralCodes = nonEmpty(rng, referrals, 2)
	},
}

func nonEmpty[T comparable](rng *rand.Rand, vs []T, max int) []T {
	for {
		if s := subset(rng, vs, max); len(s) > 0 {
			return s
		}
	}
}

func timeRange(rng *rand.Rand) projections.TimeRange {
	a, b := randomTime(rng), randomTime(rng)
	if b.Before(a) {
		a, b = b, a
	}
	r := projections.TimeRange{From: a, To: b}
	switch rng.IntN(4) {
	case 0:
		r.From = time.Time{}
	case 1:
		r.To = time.Time{}
	}
	return r
}

// searchPrefix is a prefix (whole runes) of a real search term, sometimes in
// capitals, which the search ignores.
func searchPrefix(rng *rand.Rand, rows []projections.CustomerRow) string {
	for {
		terms := projections.SearchTerms(pick(rng, rows).Customer)
		if len(terms) == 0 {
			continue
		}
		runes := []rune(pick(rng, terms))
		w := string(runes[:1+rng.IntN(min(len(runes), 6))])
		if rng.IntN(5) == 0 {
			w = strings.ToUpper(w)
		}
		return w
	}
}

// randomEntry is audit entry number i; positions grow with i.
func randomEntry(rng *rand.Rand, i int, customers []string, companyOf map[string]string) projections.AuditEntry {
	customer := pick(rng, customers)
	commit := uint64(10 + 3*i)
	prepare := commit
	if rng.IntN(4) == 0 {
		prepare = commit + 1
	}
	typ := pick(rng, auditTypes)
	e := projections.AuditEntry{
		EventLine: projections.EventLine{
			EventID:    fmt.Sprintf("evt-%05d", i),
			Revision:   uint64(1 + rng.IntN(20)),
			Type:       typ,
			Actor:      domain.Actor{Kind: domain.ActorKind("operator"), ID: pick(rng, actors), Company: companyOf[customer]},
			OccurredAt: randomTime(rng),
			RecordedAt: randomTime(rng),
		},
		Position:   domain.Position{Commit: commit, Prepare: prepare},
		CustomerID: customer,
		CompanyID:  companyOf[customer],
		Changes:    []projections.FieldChange{{Field: "status", To: json.RawMessage(`"approved"`)}},
	}
	if typ == "StatusChanged" {
		e.From, e.To, e.Transition, e.Reason, e.Labels = "pending", "approved", "approve", "ok", []string{"L1"}
	}
	if rng.IntN(2) == 0 {
		e.CorrelationID = fmt.Sprintf("corr-%d", i)
	}
	return e
}

func randomAuditQuery(rng *rand.Rand, customers []string) projections.AuditQuery {
	q := projections.AuditQuery{PerPage: pick(rng, projections.PageSizes), Page: 1 + rng.IntN(3)}
	if rng.IntN(10) == 0 {
		q.Page = 30 + rng.IntN(10)
	}
	for range rng.IntN(4) {
		switch rng.IntN(6) {
		case 0:
			q.ScopeCompany = pick(rng, companies)
		case 1:
			q.Customers = nonEmpty(rng, customers, 3)
		case 2:
			q.Actors = nonEmpty(rng, actors, 2)
		case 3:
			q.Types = nonEmpty(rng, auditTypes, 2)
		case 4:
			q.Companies = nonEmpty(rng, companies, 2)
		case 5:
			q.Time = timeRange(rng)
		}
	}
	return q
}
