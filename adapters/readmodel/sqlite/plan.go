package sqlite

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/kycengine/kyc/projections"
)

// A list query is answered in three steps. First, what each filter matches
// is estimated from the counts the store keeps (customer_counts_gN,
// customer_values_gN) and from counts of index ranges cut off at estCap.
// Then the total is counted exactly, the cheapest way the estimates point
// to, or read off the counts tables when there is a single filter. Last,
// unless the page lies past the total, the page is read the cheapest way
// for its offset, now that the number of matches is known.
//
// Each way ("access") walks one index, named in the query with INDEXED BY,
// or reads the rows of the customers one terms filter selects. SQLite's own
// choice rests on statistics that a sample of a freshly built generation
// gets wrong, and it does not weigh the offset: it would sort tens of
// thousands of rows for a page that an index delivers in order.

// Costs of the steps of a query, in rough microseconds of this driver on
// one core; only their ratios matter.
const (
	// costEntry: reading an entry of a narrow index.
	costEntry = 0.1
	// costWide: reading an entry of an index that holds every filtered
	// column, and checking the filters on it.
	costWide = 0.15
	// costSeek: reading a row by seq (a B-tree descent).
	costSeek = 2
	// costProbeSeek: finding an entry by its whole key in a narrow index,
	// whose pages stay in the cache where the rows' do not (a tag of
	// 66,000 customers checked against a verification status at 1,000,000
	// customers: 62 ms this way, 113 ms by the rows).
	costProbeSeek = 1
	// costSet: adding a seq to the set a terms filter selects, which SQLite
	// builds before it reads any row; costProbe: looking a seq up in it.
	costSet   = 1.5
	costProbe = 0.4
	// costSort: passing a row through a sorter.
	costSort = 1
)

// estCap bounds the index entries counted for an estimate; a range with
// more is taken to hold half the rows.
const estCap = 20_000

type condKind int

const (
	// condColumn: a single-valued column holds one of vals.
	condColumn condKind = iota
	// condTerm: a multi-valued field holds one of vals.
	condTerm
	// condWord: a search term starts with a word.
	condWord
	// condExpiry: a document expires in a range.
	condExpiry
	// condRange: created_at, last_status_update or birth_date in a range.
	condRange
)

// cond is one filter of a list query.
type cond struct {
	kind condKind
	// column of customers_gN the filter reads.
	column string
	// field of customer_terms_gN and customer_values_gN.
	field string
	vals  []string
	// row tests a row of customers_gN (as c).
	row     string
	rowArgs []any
	// inIndex: row reads only columns the wide indexes hold (see
	// access.holds for the others).
	inIndex bool
	// terms selects the matching rows of customer_terms_gN (as t); empty
	// for condColumn and condRange. unique: it selects each customer at
	// most once.
	terms     string
	termsArgs []any
	unique    bool
	// est is how many customers match in every company, estScope in the
	// query's companies; est is at least estCap when it was cut off.
	est, estScope float64
}

func (k *cond) set(gen projections.Generation) string {
	return "SELECT t.seq FROM " + termsTable(gen) + " AS t WHERE " + k.terms
}

// listPlan is a list query as the store answers it.
type listPlan struct {
	gen projections.Generation
	// companies the query is limited to; nil for every company. empty: the
	// scope and the company filter exclude each other.
	companies []string
	empty     bool
	conds     []*cond
	// all is the number of customers of the generation, scope the number
	// in the query's companies.
	all, scope float64
}

func newListPlan(q projections.ListQuery, gen projections.Generation) *listPlan {
	p := &listPlan{gen: gen}
	switch {
	case q.ScopeCompany != "":
		p.companies = []string{q.ScopeCompany}
		p.empty = len(q.Companies) > 0 && !slices.Contains(q.Companies, q.ScopeCompany)
	case len(q.Companies) > 0:
		p.companies = slices.Compact(slices.Sorted(slices.Values(q.Companies)))
	}
	for _, word := range projections.SearchWords(q.Q) {
		// A range, not a prefix function, so the term index serves it. No
		// UTF-8 byte is 0xff, so every string starting with word sorts
		// before word+"\xff" and no other does. The escaping of search
		// keeps prefixes, and setSep starts every term.
		p.add(&cond{kind: condWord, column: "search", field: "q",
			row: "instr(c.search, ?) > 0", rowArgs: []any{setSep + setEscaper.Replace(word)},
			terms:     "t.field = 'q' AND t.value >= ? AND t.value < ? AND (t.prev IS NULL OR t.prev < ?)",
			termsArgs: []any{word, word + "\xff", word}, unique: true})
	}
	p.column("status", q.Statuses)
	p.column("nationality", q.Nationalities)
	p.column("risk", q.Risks)
	p.column("video_call_status", q.VideoCallStatuses)
	if len(q.VerificationLevels) > 0 {
		k := &cond{kind: condColumn, column: "verification_level", field: "verification_level", inIndex: true}
		for _, l := range q.VerificationLevels {
			k.vals = append(k.vals, strconv.Itoa(l))
			k.rowArgs = append(k.rowArgs, int64(l))
		}
		k.row = inList("c.verification_level", len(k.rowArgs))
		p.add(k)
	}
	p.column("verification_status", q.VerificationStatuses)
	p.column("state", q.States)
	p.column("country", q.Countries)
	p.column("created_by_agent", q.Agents)
	p.column("referral_code", q.ReferralCodes)
	var created, updated, born where
	if !q.Created.From.IsZero() {
		created.add("c.created_at >= ?", q.Created.From.UnixNano())
	}
	if !q.Created.To.IsZero() {
		created.add("c.created_at < ?", q.Created.To.UnixNano())
	}
	p.rangeCond("created_at", created)
	// One lower bound each, not two: of two, SQLite reads the index from
	// one and checks the other on every entry.
	if !q.Updated.IsZero() {
		// 0 is "never", which no range holds.
		from := int64(1)
		if !q.Updated.From.IsZero() {
			from = max(from, q.Updated.From.UnixNano())
		}
		updated.add("c.last_status_update >= ?", from)
		if !q.Updated.To.IsZero() {
			updated.add("c.last_status_update < ?", q.Updated.To.UnixNano())
		}
	}
	p.rangeCond("last_status_update", updated)
	if q.AgeMin != nil || q.AgeMax != nil {
		// '' is an unknown birth date, which no range holds; it sorts
		// before every date.
		after, onOrBefore := q.BirthBounds()
		born.add("c.birth_date > ?", after)
		if onOrBefore != "" {
			born.add("c.birth_date <= ?", onOrBefore)
		}
	}
	p.rangeCond("birth_date", born)
	p.term(fieldTag, q.Tags)
	p.term(fieldRole, q.AccessRoles)
	p.term(fieldGroup, q.AccessGroups)
	p.term(fieldDocType, q.DocumentTypes)
	if !q.Expiry.IsZero() {
		k := &cond{kind: condExpiry, column: "expiries", field: "expiry", terms: "t.field = 'expiry'", unique: true}
		if q.Expiry.From != "" {
			k.terms += " AND t.value >= ?"
			k.termsArgs = append(k.termsArgs, q.Expiry.From)
		}
		if q.Expiry.To != "" {
			k.terms += " AND t.value <= ?"
			k.termsArgs = append(k.termsArgs, q.Expiry.To)
		}
		// A customer's first date in the range is its first date of all,
		// or follows one before the range.
		if q.Expiry.From != "" {
			k.terms += " AND (t.prev IS NULL OR t.prev < ?)"
			k.termsArgs = append(k.termsArgs, q.Expiry.From)
		} else {
			k.terms += " AND t.prev IS NULL"
		}
		// See expiriesOf. substr counts characters, which the slots'
		// ASCII makes bytes.
		k.row = "CASE WHEN c.expiries = '*' THEN +c.seq IN (" + k.set(gen) + ") ELSE ("
		k.rowArgs = slices.Clone(k.termsArgs)
		for i := range expirySlots {
			at := strconv.Itoa(i*dateLen + 1)
			slot := "substr(c.expiries, " + at + ", " + strconv.Itoa(dateLen) + ")"
			if i > 0 {
				k.row += " OR "
			}
			k.row += "(length(c.expiries) > " + strconv.Itoa(i*dateLen)
			if q.Expiry.From != "" {
				k.row += " AND " + slot + " >= ?"
				k.rowArgs = append(k.rowArgs, q.Expiry.From)
			}
			if q.Expiry.To != "" {
				k.row += " AND " + slot + " <= ?"
				k.rowArgs = append(k.rowArgs, q.Expiry.To)
			}
			k.row += ")"
		}
		k.row += ") END"
		p.add(k)
	}
	return p
}

func (p *listPlan) add(k *cond) { p.conds = append(p.conds, k) }

func inList(col string, n int) string {
	if n == 1 {
		return col + " = ?"
	}
	return col + " IN (" + marks(n) + ")"
}

func anys(vals []string) []any {
	out := make([]any, len(vals))
	for i, v := range vals {
		out[i] = v
	}
	return out
}

func (p *listPlan) column(col string, vals []string) {
	if len(vals) == 0 {
		return
	}
	p.add(&cond{kind: condColumn, column: col, field: col, vals: vals,
		row: inList("c."+col, len(vals)), rowArgs: anys(vals), inIndex: true})
}

func (p *listPlan) rangeCond(col string, w where) {
	if len(w.conds) == 0 {
		return
	}
	p.add(&cond{kind: condRange, column: col, row: strings.Join(w.conds, " AND "), rowArgs: w.args, inIndex: true})
}

func (p *listPlan) term(field int, vals []string) {
	if len(vals) == 0 {
		return
	}
	f := termFields[field]
	k := &cond{kind: condTerm, column: f.column, field: f.name, vals: vals, inIndex: true,
		terms:     "t.field = ? AND " + inList("t.value", len(vals)),
		termsArgs: append([]any{f.name}, anys(vals)...),
		unique:    len(vals) == 1}
	var tests []string
	for _, v := range vals {
		tests = append(tests, "instr(c."+f.column+", ?) > 0")
		k.rowArgs = append(k.rowArgs, setMember(v))
	}
	k.row = "(" + strings.Join(tests, " OR ") + ")"
	p.add(k)
}

// estimate fills all, scope and the estimates of every condition, in one
// statement.
func (p *listPlan) estimate(ctx context.Context, db querier) error {
	counts, values := countsTable(p.gen), valuesTable(p.gen)
	inCompanies := ""
	if p.companies != nil {
		inCompanies = " AND " + inList("company_id", len(p.companies))
	}
	cols := []string{"(SELECT coalesce(sum(n), 0) FROM " + counts + ")",
		"(SELECT coalesce(sum(n), 0) FROM " + counts + " WHERE 1" + inCompanies + ")"}
	args := anys(p.companies)
	capped := func(from, cond string, condArgs []any) {
		cols = append(cols, "(SELECT count(*) FROM (SELECT 1 FROM "+from+" WHERE "+cond+" LIMIT "+strconv.Itoa(estCap)+"))")
		args = append(args, condArgs...)
	}
	for _, k := range p.conds {
		switch k.kind {
		case condColumn, condTerm:
			sel := "(SELECT coalesce(sum(n), 0) FROM " + values + " WHERE field = ? AND " + inList("value", len(k.vals))
			cols = append(cols, sel+")", sel+inCompanies+")")
			args = append(args, k.field)
			args = append(args, anys(k.vals)...)
			args = append(args, k.field)
			args = append(args, anys(k.vals)...)
			args = append(args, anys(p.companies)...)
		case condWord, condExpiry:
			capped(termsTable(p.gen)+" AS t", k.terms, k.termsArgs)
		case condRange:
			capped(customersTable(p.gen)+" AS c INDEXED BY "+rangeIndex(p.gen, k.column), k.row, k.rowArgs)
		}
	}
	dst := make([]any, len(cols))
	ns := make([]int64, len(cols))
	for i := range ns {
		dst[i] = &ns[i]
	}
	if err := db.QueryRowContext(ctx, "SELECT "+strings.Join(cols, ", "), args...).Scan(dst...); err != nil {
		return err
	}
	p.all, p.scope = float64(ns[0]), float64(ns[1])
	i := 2
	for _, k := range p.conds {
		switch k.kind {
		case condColumn, condTerm:
			k.est, k.estScope = float64(ns[i]), float64(ns[i+1])
			i += 2
		default:
			k.est = float64(ns[i])
			if ns[i] >= estCap {
				k.est = max(k.est, p.all/2)
			}
			k.estScope = k.est
			if p.all > 0 {
				k.estScope = k.est * p.scope / p.all
			}
			i++
		}
	}
	return nil
}

// rangeIndex is the index a range of col is read from.
func rangeIndex(gen projections.Generation, col string) string {
	switch col {
	case "created_at":
		return customersTable(gen) + "_by_created"
	case "last_status_update":
		return customersTable(gen) + "_by_updated"
	}
	return customersTable(gen) + "_birth"
}

// exactTotal is the total when the counts tables answer it, without reading
// any row.
func (p *listPlan) exactTotal() (float64, bool) {
	switch {
	case p.empty:
		return 0, true
	case len(p.conds) == 0:
		return p.scope, true
	case len(p.conds) > 1:
		return 0, false
	}
	k := p.conds[0]
	// A customer holds one value of a column, so the counts of the values
	// add up; it may hold several terms of a field, so only one value's
	// count is exact.
	if k.kind == condColumn || (k.kind == condTerm && len(k.vals) == 1) {
		return k.estScope, true
	}
	return 0, false
}

// learn puts the exact total in place of the estimate of a lone condition.
func (p *listPlan) learn(total float64) {
	if len(p.conds) != 1 {
		return
	}
	k := p.conds[0]
	k.estScope = total
	if p.companies == nil {
		k.est = total
	}
}

// access is one way to read the matches of a list query.
type access struct {
	// index named in INDEXED BY; "" to read the rows of the customers the
	// driver's terms select.
	index string
	// driver is the condition the index is read by (its range), nil for a
	// walk of a whole sort index or of its part for the query's companies.
	driver *cond
	// scoped: the index starts with company_id and the walk is limited to
	// the query's companies.
	scoped bool
	// wide: the index holds every column of the conditions inIndex; the
	// indexes of keptColumns hold filterHeld.
	wide bool
	// order the entries come in, "" for none a query sorts by.
	order projections.SortKey
	// rows: entries read to find every match.
	rows float64
	// termSets: the conditions the index does not hold (words,
	// expiry) are checked against their sets of seqs, built first, rather
	// than on the rows, looked up one by one.
	termSets bool
	// byTerms: the driver's terms rows are the matches, counted and paged
	// without reading a customer (they hold the company and the default
	// sort key); every other condition, a column's, is checked by finding
	// the entry of the terms row's customer in that column's index (see
	// probe). A page in another order reads the rows.
	byTerms bool
	// merged (with byTerms): the other conditions are not probed; the
	// terms rows and the entries of each column's index, all in created
	// order, are intersected as they are read (see mergeable).
	merged bool
}

func sortIndex(gen projections.Generation, key projections.SortKey, scoped bool) string {
	name := customersTable(gen)
	if scoped {
		name += "_company"
	}
	return name + "_by_" + keyName(key)
}

// columnIndex is the index that holds the customers by a column's value,
// then in key order: every column has one for the default sort, status one
// for each key.
func columnIndex(gen projections.Generation, column string, key projections.SortKey) string {
	return customersTable(gen) + "_" + column + "_" + keyName(key)
}

// keyName is how index names call a sort key.
func keyName(key projections.SortKey) string {
	switch key {
	case projections.SortName:
		return "name"
	case projections.SortLastStatusUpdate:
		return "updated"
	}
	return "created"
}

// accesses lists the ways to read the query's matches.
func (p *listPlan) accesses() []access {
	var out []access
	for _, key := range projections.SortKeys {
		col := sortColumn(key)
		for _, scoped := range []bool{true, false} {
			if scoped && p.companies == nil {
				continue
			}
			a := access{index: sortIndex(p.gen, key, scoped), scoped: scoped, wide: true, order: key, rows: p.all}
			if scoped {
				a.rows = p.scope
			}
			for _, k := range p.conds {
				if k.kind == condRange && k.column == col {
					a.driver, a.rows = k, k.est
					if scoped {
						a.rows = k.estScope
					}
				}
			}
			out = append(out, a)
		}
	}
	for _, k := range p.conds {
		switch k.kind {
		case condColumn:
			// Only status has one for each sort key.
			wide := wideColumn(k.column)
			keys := []projections.SortKey{projections.SortCreatedAt}
			if wide {
				keys = projections.SortKeys
			}
			for _, key := range keys {
				out = append(out, access{index: columnIndex(p.gen, k.column, key), driver: k, wide: wide, order: key, rows: k.est})
			}
		case condRange:
			if k.column == "birth_date" {
				out = append(out, access{index: rangeIndex(p.gen, k.column), driver: k, rows: k.est})
			}
		case condTerm, condWord, condExpiry:
			out = append(out, access{driver: k, rows: k.est})
			if k.unique && p.probed(k) {
				out = append(out, access{driver: k, rows: k.est, byTerms: true})
			}
			if p.mergeable(k) {
				out = append(out, access{driver: k, rows: k.est, byTerms: true, merged: true})
			}
		}
	}
	return out
}

// probed: every condition but driver is a column's, which a terms row of
// driver can be checked against in that column's index: the index starts
// with the column, then the created date and seq the terms row holds.
func (p *listPlan) probed(driver *cond) bool {
	for _, k := range p.conds {
		if k != driver && k.kind != condColumn {
			return false
		}
	}
	return true
}

// mergeable: driver's terms rows and the other conditions' index entries
// can each be read in created order and intersected in one pass: driver
// is one value of a terms field, which orders its rows by created date and
// seq, and each other condition is one value of a column, whose index
// orders its entries under the value the same way. (An IN list would come
// value after value, so SQLite would sort it first.) Reading every entry
// of both beats a probe per terms row when the column's matches are not
// many more than the terms rows (tag and verification status at 1,000,000
// customers, 67,000 and 320,000 entries: 42 ms merged, 62 ms probed).
func (p *listPlan) mergeable(driver *cond) bool {
	if len(p.conds) < 2 || !(access{driver: driver}).inOrder() || !p.probed(driver) {
		return false
	}
	for _, k := range p.probes(driver) {
		if len(k.rowArgs) != 1 {
			return false
		}
	}
	return true
}

// mergeCost is what reading n entries of the terms rows of a's driver,
// and as large a share of each other condition's entries, costs: all of
// them for a count, up to the end of a page for a page.
func (p *listPlan) mergeCost(a access, n float64) float64 {
	c := n * costEntry
	for _, k := range p.probes(a.driver) {
		per := costEntry
		if wideColumn(k.column) {
			per = costWide
		}
		if a.rows > 0 {
			c += n / a.rows * k.est * per
		}
	}
	return c
}

// probes are the conditions a terms row of driver is checked against, the
// fewest matches first, so that each check reaches as few rows as it can.
func (p *listPlan) probes(driver *cond) []*cond {
	var out []*cond
	for _, k := range p.conds {
		if k != driver {
			out = append(out, k)
		}
	}
	slices.SortStableFunc(out, func(a, b *cond) int { return cmp.Compare(a.est, b.est) })
	return out
}

// probeCost is what checking n terms rows of a's driver against the other
// conditions costs; each check reaches only the rows the ones before it
// passed.
func (p *listPlan) probeCost(a access, n float64) float64 {
	var c float64
	for _, k := range p.probes(a.driver) {
		c += n * costProbeSeek
		if p.all > 0 {
			n *= min(1, k.est/p.all)
		}
	}
	return c
}

// wideColumn: the index of the column holds every filtered column (see
// customers.up.sql); only status's does.
func wideColumn(col string) bool { return col == "status" }

// inOrder: the terms rows of a's condition come in the default sort order,
// since they share field and value.
func (a access) inOrder() bool {
	return a.driver.kind == condTerm && len(a.driver.vals) == 1
}

// keptColumns are the single-valued filter columns a customer keeps for
// life or changes seldom; their indexes hold filterHeld after their key
// (see customers.up.sql), so that no risk, tag or status change writes
// them.
var (
	keptColumns = []string{"nationality", "country", "created_by_agent", "referral_code"}
	filterHeld  = []string{"company_id", "birth_date", "doc_types"}
)

// keptIndex: a walks the index of a kept column.
func (a access) keptIndex() bool {
	return a.driver != nil && a.driver.kind == condColumn && slices.Contains(keptColumns, a.driver.column)
}

// holds: a's entries carry what k checks.
func (a access) holds(k *cond) bool {
	return k.inIndex && (a.wide || (a.keptIndex() && slices.Contains(filterHeld, k.column)))
}

// holdsCompany: a's entries carry the company, so a scope is checked on
// them.
func (a access) holdsCompany() bool { return a.wide || a.keptIndex() }

// cost is what reading visited entries through a costs, and a with its
// choice of how to check words made; sortKey tells whether the rows that
// match need a lookup for their sort key, and matches how many do.
func (p *listPlan) cost(a access, visited float64, sortKey bool, matches float64) (float64, access) {
	var c float64
	// What building the sets of the conditions not in the index costs.
	var sets float64
	for _, k := range p.conds {
		if k != a.driver && !k.inIndex {
			sets += k.est * costSet
		}
	}
	switch {
	case a.index == "" && a.driver.unique:
		c = visited * costSeek
	case a.index == "":
		c = visited * (costSet + costSeek)
	default:
		// The share of entries that pass the filters the index holds: the
		// rest are checked on the row, looked up, or against the sets.
		perEntry, pass, onRow := costEntry, 1.0, false
		if a.wide {
			perEntry = costWide
		}
		for _, k := range p.conds {
			switch {
			case k == a.driver:
			case a.holds(k):
				perEntry = costWide
				if p.all > 0 {
					pass *= min(1, k.est/p.all)
				}
			case k.inIndex:
				onRow = true
			}
		}
		c = visited * perEntry
		if p.companies != nil && !a.scoped {
			if !a.holdsCompany() {
				onRow = true
			} else if p.all > 0 {
				pass *= p.scope / p.all
			}
		}
		switch onSets := sets + visited*pass*costProbe; {
		case !onRow && sets > 0 && onSets < visited*pass*costSeek:
			a.termSets = true
			c += onSets
		case onRow || sets > 0:
			c += visited * pass * costSeek
			sortKey = false
		}
	}
	if a.index == "" {
		sortKey = false
	}
	if sortKey {
		c += matches * costSeek
	}
	return c, a
}

func (p *listPlan) countCost(a access) (float64, access) {
	switch {
	case a.merged:
		return p.mergeCost(a, a.rows), a
	case a.byTerms:
		return a.rows*costEntry + p.probeCost(a, a.rows), a
	}
	return p.cost(a, a.rows, false, 0)
}

// pageCost is the cost of reading matches [0, end) of total in key order.
func (p *listPlan) pageCost(a access, key projections.SortKey, end, total float64) (float64, access) {
	switch {
	case a.byTerms && key != projections.SortCreatedAt:
		// pageSQLWith reads the rows for their sort key, as without byTerms.
		a.byTerms, a.merged = false, false
	case a.merged:
		// The merge stops at the end of the page.
		return p.mergeCost(a, pageShare(a.rows, end, total)), a
	case a.byTerms && a.inOrder():
		visited := pageShare(a.rows, end, total)
		return visited*costEntry + p.probeCost(a, visited), a
	case a.byTerms:
		return a.rows*costEntry + p.probeCost(a, a.rows) + total*costSort, a
	}
	if a.order == key {
		return p.cost(a, pageShare(a.rows, end, total), false, 0)
	}
	c, a := p.cost(a, a.rows, true, total)
	return c + total*costSort, a
}

// pageShare is how many of rows, read in order, a page ending at match end
// of total reads: matches are taken to be spread evenly among them.
func pageShare(rows, end, total float64) float64 {
	if total <= 0 {
		return rows
	}
	return min(rows, math.Ceil(end*rows/total))
}

func cheapest(as []access, cost func(access) (float64, access)) access {
	var best access
	bestCost := math.Inf(1)
	for _, a := range as {
		if c, a := cost(a); c < bestCost {
			best, bestCost = a, c
		}
	}
	return best
}

// from is the FROM and WHERE clauses that read the query's matches through
// a, with their arguments.
func (p *listPlan) from(a access) (string, []any) {
	table := customersTable(p.gen) + " AS c"
	var w, index, rows, sets where
	switch {
	case a.index == "" && a.driver.unique:
		// Each customer once: its rows straight off the terms.
		table = termsTable(p.gen) + " AS t CROSS JOIN " + table + " NOT INDEXED ON c.seq = t.seq"
		w.add(a.driver.terms, a.driver.termsArgs...)
	case a.index == "":
		// A customer may hold several of the values: the set drops the
		// repeats, and the rows are looked up by seq.
		table += " NOT INDEXED"
		w.add("c.seq IN ("+a.driver.set(p.gen)+")", a.driver.termsArgs...)
	default:
		table += " INDEXED BY " + a.index
		if a.driver != nil {
			w.add(a.driver.row, a.driver.rowArgs...)
		}
	}
	if p.companies != nil {
		w.add(inList("c.company_id", len(p.companies)), anys(p.companies)...)
	}
	for _, k := range p.conds {
		switch {
		case k == a.driver:
		case k.inIndex:
			index.add(k.row, k.rowArgs...)
		case !a.termSets:
			rows.add(k.row, k.rowArgs...)
		default:
			// The unary + keeps SQLite from reading the index by the
			// set (a skip-scan over every value of its first column).
			sets.add("+c.seq IN ("+k.set(p.gen)+")", k.termsArgs...)
		}
	}
	// Checks on the index entry first, then on the row, sets last: SQLite
	// tests the terms of a WHERE in order.
	for _, part := range []where{index, rows, sets} {
		w.conds = append(w.conds, part.conds...)
		w.args = append(w.args, part.args...)
	}
	return table + w.String(), w.args
}

// countSQL counts the query's matches.
func (p *listPlan) countSQL() (string, []any) {
	if len(p.conds) == 1 && p.companies == nil {
		if k := p.conds[0]; k.terms != "" {
			// The terms table alone, without visiting the customers.
			what := "count(*)"
			if !k.unique {
				what = "count(DISTINCT t.seq)"
			}
			from, args := p.termsFrom(access{driver: k})
			return "SELECT " + what + " FROM " + from, args
		}
	}
	return p.countSQLWith(cheapest(p.accesses(), p.countCost))
}

func (p *listPlan) countSQLWith(a access) (string, []any) {
	if a.merged {
		sel, args := p.mergeSQL(a, "")
		return "SELECT count(*) FROM (" + sel + ")", args
	}
	if a.byTerms {
		from, args := p.termsFrom(a)
		return "SELECT count(*) FROM " + from, args
	}
	from, args := p.from(a)
	return "SELECT count(*) FROM " + from, args
}

// termsWhere selects the terms rows (as t) of a's condition in the query's
// companies.
func (p *listPlan) termsWhere(a access) where {
	var w where
	w.add(a.driver.terms, a.driver.termsArgs...)
	if p.companies != nil {
		w.add(inList("t.company_id", len(p.companies)), anys(p.companies)...)
	}
	return w
}

// termsFrom is the FROM and WHERE clauses that read the terms rows of a's
// condition in the query's companies that match the other conditions.
func (p *listPlan) termsFrom(a access) (string, []any) {
	w := p.termsWhere(a)
	for _, k := range p.probes(a.driver) {
		w.add(p.probe(k), k.rowArgs...)
	}
	return termsTable(p.gen) + " AS t" + w.String(), w.args
}

// mergeSQL selects the created date and seq of every match of the merged
// access a, in created order (dir "" or " DESC"), with the query's
// companies checked on the terms rows. The ORDER BY is what makes SQLite
// intersect the sorted arms as it reads them instead of building a table of
// one of them.
func (p *listPlan) mergeSQL(a access, dir string) (string, []any) {
	w := p.termsWhere(a)
	sel := "SELECT t.created_at, t.seq FROM " + termsTable(p.gen) + " AS t" + w.String()
	args := w.args
	for _, k := range p.probes(a.driver) {
		sel += " INTERSECT SELECT i.created_at, i.seq FROM " + p.inColumnIndex(k) + " WHERE i." + k.column + " = ?"
		args = append(args, k.rowArgs...)
	}
	return sel + " ORDER BY 1" + dir + ", 2" + dir, args
}

// probe tests whether the customer of terms row t matches the column
// condition k, off k's index alone: the entry with t's created date and
// seq under one of k's values.
func (p *listPlan) probe(k *cond) string {
	return "EXISTS (SELECT 1 FROM " + p.inColumnIndex(k) + " WHERE " + inList("i."+k.column, len(k.rowArgs)) +
		" AND i.created_at = t.created_at AND i.seq = t.seq)"
}

// inColumnIndex reads the customers (as i) through the default-order index
// of k's column, which probes and merges use.
func (p *listPlan) inColumnIndex(k *cond) string {
	return customersTable(p.gen) + " AS i INDEXED BY " + columnIndex(p.gen, k.column, projections.SortCreatedAt)
}

// pageSQL selects the seqs of one page of total matches.
func (p *listPlan) pageSQL(q projections.ListQuery, total float64) (string, []any) {
	end := float64(q.Offset() + q.PerPage)
	a := cheapest(p.accesses(), func(a access) (float64, access) { return p.pageCost(a, q.Sort, end, total) })
	return p.pageSQLWith(a, q)
}

func (p *listPlan) pageSQLWith(a access, q projections.ListQuery) (string, []any) {
	dir := ""
	if q.Desc {
		dir = " DESC"
	}
	if a.merged && q.Sort == projections.SortCreatedAt {
		sel, args := p.mergeSQL(a, dir)
		// The outer ORDER BY keeps the page's order, which a subquery's
		// does not promise; it sorts the page's rows only.
		return "SELECT m.seq FROM (" + sel + " LIMIT ? OFFSET ?) AS m ORDER BY m.created_at" + dir + ", m.seq" + dir,
			append(args, int64(q.PerPage), int64(q.Offset()))
	}
	if a.byTerms && q.Sort == projections.SortCreatedAt {
		from, args := p.termsFrom(a)
		return "SELECT t.seq FROM " + from + " ORDER BY t.created_at" + dir + ", t.seq" + dir + " LIMIT ? OFFSET ?",
			append(args, int64(q.PerPage), int64(q.Offset()))
	}
	a.byTerms, a.merged = false, false
	from, args := p.from(a)
	return "SELECT c.seq FROM " + from + " ORDER BY c." + sortColumn(q.Sort) + dir + ", c.seq" + dir + " LIMIT ? OFFSET ?",
		append(args, int64(q.PerPage), int64(q.Offset()))
}
