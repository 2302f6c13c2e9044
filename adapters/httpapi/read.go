package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// The read routes: the customer list, the profile read model, the audit log
// and the history. Query parameters are parsed strictly, like bodies: an
// unknown name, a bad value or a single-valued parameter given twice is
// refused with 422 naming the parameter, because a filter silently ignored
// returns data the caller did not ask for.

// Limits on query values: they only guard against abuse, far above any real
// filter.
const (
	maxValueLength = 200
	maxValues      = 100
)

// Names of the list's query parameters.
var (
	listRepeatable = []string{"status", "company", "document_type", "nationality", "risk", "video_call_status",
		"verification_level", "verification_status", "state", "country", "tag", "access_role", "access_group",
		"agent", "referral_code"}
	listSingle = []string{"q", "created_from", "created_to", "updated_from", "updated_to", "expiry_from", "expiry_to",
		"age_min", "age_max", "sort", "page", "per_page"}
	auditRepeatable = []string{"customer", "actor", "type", "company"}
	auditSingle     = []string{"from", "to", "page", "per_page"}
)

// Closed value sets of the list's filters.
var (
	risks                = []string{domain.RiskNormal, domain.RiskHigh, domain.RiskVeryHigh}
	verificationStatuses = []string{domain.VerificationIdentified, domain.VerificationPhoneVerified,
		domain.VerificationEmailVerified, domain.VerificationNotVerified}
	bankingStates = []string{"active", "suspended", "blocked"}
	sortValues    = []string{"created_at", "-created_at", "last_status_update", "-last_status_update", "name", "-name"}
)

// query is a raw query string split into parameters in the order given,
// every repetition kept, so that repeats can be told from single values.
type query struct {
	names  []string
	values map[string][]string
	errs   domain.FieldErrors
}

// parseQuery splits a raw query string. Unlike url.ParseQuery it names the
// parameter whose encoding is bad instead of dropping it.
func parseQuery(raw string) *query {
	q := &query{values: map[string][]string{}}
	for piece := range strings.SplitSeq(raw, "&") {
		if piece == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(piece, "=")
		key, err := url.QueryUnescape(rawKey)
		if err != nil {
			q.fail(clipName(rawKey), "is not a validly encoded parameter name")
			continue
		}
		if key == "" {
			q.fail("query", "a parameter has no name")
			continue
		}
		value, err := url.QueryUnescape(rawValue)
		if err != nil {
			q.fail(clipName(key), "the value is not validly percent-encoded")
			continue
		}
		if _, seen := q.values[key]; !seen {
			q.names = append(q.names, key)
		}
		q.values[key] = append(q.values[key], value)
	}
	return q
}

// clipName keeps an absurd parameter name from being echoed back whole.
func clipName(name string) string {
	if len(name) > 64 {
		return name[:64] + "..."
	}
	return name
}

func (q *query) fail(field, format string, args ...any) {
	q.errs = append(q.errs, &domain.FieldError{Field: field, Detail: fmt.Sprintf(format, args...), Err: domain.ErrInvalid})
}

// allow refuses every parameter not named, and single-valued ones given
// more than once.
func (q *query) allow(repeatable, single []string) {
	for _, name := range q.names {
		switch vs := q.values[name]; {
		case slices.Contains(single, name):
			if len(vs) > 1 {
				q.fail(name, "is given %d times; give it once", len(vs))
			}
		case slices.Contains(repeatable, name):
			if len(vs) > maxValues {
				q.fail(name, "is given %d times; at most %d values are accepted", len(vs), maxValues)
			}
		default:
			q.fail(clipName(name), "unknown query parameter")
		}
	}
}

// err is the refusal, nil when every parameter was good.
func (q *query) err() error {
	if len(q.errs) == 0 {
		return nil
	}
	return q.errs
}

// one returns a single-valued parameter ("" when absent). A repeat was
// already refused by allow; the first value is used so parsing can go on and
// report everything else too.
func (q *query) one(name string) string {
	if vs := q.values[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// texts returns the values of a repeatable free-text parameter.
func (q *query) texts(name string) []string {
	var out []string
	for _, v := range q.values[name] {
		switch {
		case v == "":
			q.fail(name, "is empty")
		case len(v) > maxValueLength:
			q.fail(name, "is longer than %d characters", maxValueLength)
		default:
			out = append(out, v)
		}
	}
	return out
}

// enum returns the values of a repeatable parameter with a closed set.
func (q *query) enum(name string, allowed []string) []string {
	var out []string
	for _, v := range q.values[name] {
		if !slices.Contains(allowed, v) {
			q.fail(name, "%q is not one of %s", clip(v), strings.Join(allowed, ", "))
			continue
		}
		out = append(out, v)
	}
	return out
}

// countries returns the values of a repeatable ISO 3166-1 alpha-2 parameter.
func (q *query) countries(name string) []string {
	var out []string
	for _, v := range q.values[name] {
		if len(v) != 2 || v[0] < 'A' || v[0] > 'Z' || v[1] < 'A' || v[1] > 'Z' {
			q.fail(name, "%q is not a two-letter upper-case country code", clip(v))
			continue
		}
		out = append(out, v)
	}
	return out
}

// number parses a non-negative decimal integer in [lo, hi]; ok is false when
// absent or refused.
func (q *query) number(name, v string, lo, hi int) (int, bool) {
	n, ok := digitsValue(v)
	if !ok || n < lo || n > hi {
		q.fail(name, "%q is not a whole number from %d to %d", clip(v), lo, hi)
		return 0, false
	}
	return n, true
}

// digitsValue accepts only plain digits: strconv.Atoi would also take signs,
// which no parameter here means.
func digitsValue(v string) (int, bool) {
	if v == "" || len(v) > 9 {
		return 0, false
	}
	for _, c := range []byte(v) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(v)
	return n, err == nil
}

func (q *query) optionalNumber(name string, lo, hi int) *int {
	v, given := q.values[name]
	if !given {
		return nil
	}
	n, ok := q.number(name, v[0], lo, hi)
	if !ok {
		return nil
	}
	return &n
}

// timeRange reads <prefix>_from and <prefix>_to (or from and to when prefix
// is empty) as the half-open range the stores use. A date-only bound covers
// its whole day (UTC) and an RFC 3339 `to` includes its instant.
func (q *query) timeRange(fromName, toName string) projections.TimeRange {
	var r projections.TimeRange
	var fromOK, toOK bool
	if v, given := q.values[fromName]; given {
		r.From, fromOK = q.timeBound(fromName, v[0], false)
	}
	if v, given := q.values[toName]; given {
		r.To, toOK = q.timeBound(toName, v[0], true)
	}
	if fromOK && toOK && !r.From.Before(r.To) {
		q.fail(toName, "is before %s", fromName)
	}
	return r
}

func (q *query) timeBound(name, v string, upper bool) (time.Time, bool) {
	if t, err := time.Parse(time.DateOnly, v); err == nil && len(v) == len(time.DateOnly) {
		if upper {
			t = t.AddDate(0, 0, 1)
		}
		return t, true
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		q.fail(name, "%q is neither an RFC 3339 time nor a date (YYYY-MM-DD)", clip(v))
		return time.Time{}, false
	}
	if upper {
		t = t.Add(time.Nanosecond)
	}
	return t.UTC(), true
}

// dateRange reads an inclusive range of dates.
func (q *query) dateRange(fromName, toName string) projections.DateRange {
	var r projections.DateRange
	date := func(name string) string {
		v, given := q.values[name]
		if !given {
			return ""
		}
		if _, err := time.Parse(time.DateOnly, v[0]); err != nil || len(v[0]) != len(time.DateOnly) {
			q.fail(name, "%q is not a date (YYYY-MM-DD)", clip(v[0]))
			return ""
		}
		return v[0]
	}
	r.From, r.To = date(fromName), date(toName)
	if r.From != "" && r.To != "" && r.From > r.To {
		q.fail(toName, "is before %s", fromName)
	}
	return r
}

// paging reads page and per_page.
func (q *query) paging() (page, perPage int) {
	page, perPage = 1, projections.DefaultPerPage
	if v, given := q.values["page"]; given {
		if n, ok := q.number("page", v[0], 1, projections.MaxPage); ok {
			page = n
		}
	}
	if v, given := q.values["per_page"]; given {
		n, ok := digitsValue(v[0])
		if !ok || !slices.Contains(projections.PageSizes, n) {
			q.fail("per_page", "%q is not one of 20, 50, 100", clip(v[0]))
		} else {
			perPage = n
		}
	}
	return page, perPage
}

func clip(v string) string {
	if len(v) > 64 {
		return v[:64] + "..."
	}
	return v
}

// lifecycleStatuses is every status of every lifecycle version, the values
// the status filter accepts.
func lifecycleStatuses(ls *domain.Lifecycles) []string {
	var out []string
	for _, name := range ls.Names() {
		latest, err := ls.Latest(name)
		if err != nil {
			continue
		}
		for v := 1; v <= latest.Version(); v++ {
			l, err := ls.Get(name, v)
			if err != nil {
				continue
			}
			for _, st := range l.Definition().States {
				if !slices.Contains(out, st.Name) {
					out = append(out, st.Name)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// parseListQuery turns the list's raw query string into a ListQuery; the
// error is a domain.FieldErrors naming every bad parameter.
func parseListQuery(raw string, statuses []string) (projections.ListQuery, error) {
	q := parseQuery(raw)
	q.allow(listRepeatable, listSingle)
	var lq projections.ListQuery
	if v := q.one("q"); len(v) > maxValueLength {
		q.fail("q", "is longer than %d characters", maxValueLength)
	} else {
		lq.Q = v
	}
	lq.Statuses = q.enum("status", statuses)
	lq.Created = q.timeRange("created_from", "created_to")
	lq.Updated = q.timeRange("updated_from", "updated_to")
	lq.Companies = q.texts("company")
	lq.DocumentTypes = q.enum("document_type", domain.DocumentTypes)
	lq.Nationalities = q.countries("nationality")
	lq.Expiry = q.dateRange("expiry_from", "expiry_to")
	lq.Risks = q.enum("risk", risks)
	lq.AgeMin = q.optionalNumber("age_min", 0, 150)
	lq.AgeMax = q.optionalNumber("age_max", 0, 150)
	if lq.AgeMin != nil && lq.AgeMax != nil && *lq.AgeMin > *lq.AgeMax {
		q.fail("age_max", "is less than age_min")
	}
	lq.VideoCallStatuses = q.enum("video_call_status", domain.VideoCallStatuses)
	for _, v := range q.values["verification_level"] {
		if n, ok := q.number("verification_level", v, 0, 5); ok {
			lq.VerificationLevels = append(lq.VerificationLevels, n)
		}
	}
	lq.VerificationStatuses = q.enum("verification_status", verificationStatuses)
	lq.States = q.enum("state", bankingStates)
	lq.Countries = q.countries("country")
	lq.Tags = q.texts("tag")
	lq.AccessRoles = q.texts("access_role")
	lq.AccessGroups = q.texts("access_group")
	lq.Agents = q.texts("agent")
	lq.ReferralCodes = q.texts("referral_code")
	lq.Sort, lq.Desc = projections.SortCreatedAt, true
	if v, given := q.values["sort"]; given {
		if !slices.Contains(sortValues, v[0]) {
			q.fail("sort", "%q is not one of %s", clip(v[0]), strings.Join(sortValues, ", "))
		} else {
			lq.Desc = strings.HasPrefix(v[0], "-")
			lq.Sort = projections.SortKey(strings.TrimPrefix(v[0], "-"))
		}
	}
	lq.Page, lq.PerPage = q.paging()
	return lq, q.err()
}

// parseAuditQuery turns the audit log's raw query string into an AuditQuery.
func parseAuditQuery(raw string, types []string) (projections.AuditQuery, error) {
	q := parseQuery(raw)
	q.allow(auditRepeatable, auditSingle)
	var aq projections.AuditQuery
	aq.Customers = q.texts("customer")
	aq.Actors = q.texts("actor")
	aq.Types = q.enum("type", types)
	aq.Companies = q.texts("company")
	aq.Time = q.timeRange("from", "to")
	aq.Page, aq.PerPage = q.paging()
	return aq, q.err()
}

// readersOnly refuses the read routes when no read models are wired, and
// the list and audit log to callers of kind customer: those show every
// customer of the company, and a customer may only see itself.
func (s *Server) readersOnly(w http.ResponseWriter, r *http.Request, companyWide bool) bool {
	if s.reader == nil {
		writeProblem(w, r, Problem{Type: problemBase + "read-models-unavailable", Status: http.StatusServiceUnavailable,
			Detail: "read models are not configured"})
		return false
	}
	if companyWide && callerFrom(r.Context()).Actor.Kind == domain.ActorCustomer {
		writeProblem(w, r, Problem{Type: problemBase + "forbidden", Status: http.StatusForbidden,
			Detail: "the customer list and the audit log are for operators and auditors"})
		return false
	}
	return true
}

// failRead maps the read side's errors, then falls back to the API's usual
// mapping.
func (s *Server) failRead(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, projections.ErrRevisionTimeout):
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, Problem{Type: problemBase + "revision-not-reached", Title: "Read model behind the requested revision",
			Status: http.StatusServiceUnavailable, Detail: err.Error(), Field: "min_revision"})
	case errors.Is(err, projections.ErrNotFound):
		writeProblem(w, r, Problem{Type: problemBase + "customer-not-found", Title: "Customer not found",
			Status: http.StatusNotFound, Detail: err.Error()})
	default:
		s.fail(w, r, err)
	}
}

type listResponse struct {
	Total   int                    `json:"total"`
	Page    int                    `json:"page"`
	PerPage int                    `json:"per_page"`
	Items   []projections.ListItem `json:"items"`
}

func (s *Server) listCustomers(w http.ResponseWriter, r *http.Request) {
	if !s.readersOnly(w, r, true) {
		return
	}
	lq, err := parseListQuery(r.URL.RawQuery, lifecycleStatuses(s.svc.Lifecycles()))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	lq.Now = s.reader.Now()
	page, err := s.reader.List(r.Context(), callerFrom(r.Context()), lq)
	if err != nil {
		s.failRead(w, r, err)
		return
	}
	out := listResponse{Total: page.Total, Page: page.Page, PerPage: page.PerPage, Items: make([]projections.ListItem, 0, len(page.Rows))}
	for _, row := range page.Rows {
		out.Items = append(out.Items, projections.ListItemOf(row, lq.Now))
	}
	writeJSON(w, http.StatusOK, out)
}

// getProfile serves GET /v1/customers/{id}: the profile read model when read
// models are wired, else the command side's state as before.
func (s *Server) getProfile(w http.ResponseWriter, r *http.Request) {
	if s.reader == nil {
		s.getCustomer(w, r)
		return
	}
	q := parseQuery(r.URL.RawQuery)
	q.allow(nil, []string{"min_revision"})
	var minRevision *uint64
	if v, given := q.values["min_revision"]; given {
		n, err := strconv.ParseUint(v[0], 10, 64)
		if err != nil || strings.HasPrefix(v[0], "+") {
			q.fail("min_revision", "%q is not a revision number", clip(v[0]))
		} else {
			minRevision = &n
		}
	}
	if err := q.err(); err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := s.reader.Profile(r.Context(), callerFrom(r.Context()), r.PathValue("id"), minRevision)
	if err != nil {
		s.failRead(w, r, err)
		return
	}
	w.Header().Set("ETag", etag(p.Revision))
	writeJSON(w, http.StatusOK, p)
}

type auditResponse struct {
	Total   int                      `json:"total"`
	Page    int                      `json:"page"`
	PerPage int                      `json:"per_page"`
	Items   []projections.AuditEntry `json:"items"`
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) {
	if !s.readersOnly(w, r, true) {
		return
	}
	aq, err := parseAuditQuery(r.URL.RawQuery, s.svc.Codec().TypeNames())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page, err := s.reader.Audit(r.Context(), callerFrom(r.Context()), aq)
	if err != nil {
		s.failRead(w, r, err)
		return
	}
	items := page.Entries
	if items == nil {
		items = []projections.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, auditResponse{Total: page.Total, Page: page.Page, PerPage: page.PerPage, Items: items})
}

func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	if !s.readersOnly(w, r, false) {
		return
	}
	q := parseQuery(r.URL.RawQuery)
	q.allow(nil, nil)
	if err := q.err(); err != nil {
		s.fail(w, r, err)
		return
	}
	entries, err := s.reader.History(r.Context(), callerFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		s.failRead(w, r, err)
		return
	}
	if entries == nil {
		entries = []projections.HistoryEntry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": entries})
}
