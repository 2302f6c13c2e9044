package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

type customerTables struct {
	customers, docs, search, expiry, counts string
}

func tablesOf(gen projections.Generation) customerTables {
	n := strconv.FormatInt(int64(gen), 10)
	return customerTables{
		customers: "read_customers_g" + n,
		docs:      "read_customer_docs_g" + n,
		search:    "read_search_g" + n,
		expiry:    "read_expiry_g" + n,
		counts:    "read_customer_counts_g" + n,
	}
}

// record is a row of read_customers_gN as PutCustomers sends it: the rows
// of a put travel as one JSON array that jsonb_to_recordset turns back into
// rows, which carries the per-row arrays (tags, ...) that parallel unnest
// arrays cannot.
type record struct {
	Ord                int64    `json:"ord"`
	ID                 string   `json:"id"`
	CompanyID          string   `json:"company_id"`
	Status             string   `json:"status"`
	Nationality        string   `json:"nationality"`
	Risk               string   `json:"risk"`
	VideoCallStatus    string   `json:"video_call_status"`
	VerificationLevel  int      `json:"verification_level"`
	VerificationStatus string   `json:"verification_status"`
	State              string   `json:"state"`
	AggregatedStatus   string   `json:"aggregated_status"`
	Country            string   `json:"country"`
	CreatedByAgent     string   `json:"created_by_agent"`
	ReferralCode       string   `json:"referral_code"`
	BirthDate          string   `json:"birth_date"`
	CreatedAt          int64    `json:"created_at"`
	LastStatusUpdate   *int64   `json:"last_status_update"`
	NameSort           string   `json:"name_sort"`
	Tags               []string `json:"tags"`
	AccessRoles        []string `json:"access_roles"`
	AccessGroups       []string `json:"access_groups"`
	DocTypes           []string `json:"doc_types"`
}

// recordColumns are the columns of record in read_customers_gN, with their
// types for jsonb_to_recordset (ord is only the input order).
var recordColumns = []struct{ name, typ string }{
	{"id", "text"}, {"company_id", "text"}, {"status", "text"}, {"nationality", "text"}, {"risk", "text"},
	{"video_call_status", "text"}, {"verification_level", "integer"}, {"verification_status", "text"},
	{"state", "text"}, {"aggregated_status", "text"}, {"country", "text"}, {"created_by_agent", "text"},
	{"referral_code", "text"}, {"birth_date", "text"}, {"created_at", "bigint"}, {"last_status_update", "bigint"},
	{"name_sort", "text"}, {"tags", "text[]"}, {"access_roles", "text[]"}, {"access_groups", "text[]"},
	{"doc_types", "text[]"},
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func recordOf(ord int, r projections.CustomerRow) record {
	c := r.Customer
	rec := record{
		Ord: int64(ord), ID: c.ID, CompanyID: c.CompanyID, Status: c.Status, Nationality: c.Nationality,
		Risk: c.Risk, VideoCallStatus: c.VideoCallStatus, VerificationLevel: c.VerificationLevel,
		VerificationStatus: r.VerificationStatus, State: r.State, AggregatedStatus: r.AggregatedStatus,
		Country: projections.Country(c), CreatedByAgent: c.CreatedByAgent, ReferralCode: c.ReferralCode,
		BirthDate: c.BirthDate, CreatedAt: c.CreatedAt.UnixNano(), NameSort: projections.NameSortKey(c),
		Tags: nonNil(c.Tags), AccessRoles: nonNil(c.AccessRoles), AccessGroups: nonNil(c.AccessGroups),
		DocTypes: []string{},
	}
	if c.LastStatusUpdate != nil {
		t := c.LastStatusUpdate.UnixNano()
		rec.LastStatusUpdate = &t
	}
	for _, d := range c.Documents {
		if !slices.Contains(rec.DocTypes, d.Type) {
			rec.DocTypes = append(rec.DocTypes, d.Type)
		}
	}
	return rec
}

// terms are a customer's rows in the search and expiry tables, sorted.
type terms struct {
	Search []string `json:"q"`
	Expiry []string `json:"e"`
}

func termsOf(c *domain.Customer) terms {
	t := terms{Search: projections.SearchTerms(c), Expiry: []string{}}
	for _, d := range c.Documents {
		// An empty expiry date is in no range (DateRange.Contains).
		if d.ExpiryDate != "" {
			t.Expiry = append(t.Expiry, d.ExpiryDate)
		}
	}
	slices.Sort(t.Search)
	slices.Sort(t.Expiry)
	t.Search = slices.Compact(nonNil(t.Search))
	t.Expiry = slices.Compact(t.Expiry)
	return t
}

// diff appends to del what is in old and not in new, and to add the
// reverse; both are sorted.
func diff(old, new []string, del, add func(string)) {
	i, j := 0, 0
	for i < len(old) || j < len(new) {
		switch {
		case j == len(new) || (i < len(old) && old[i] < new[j]):
			del(old[i])
			i++
		case i == len(old) || new[j] < old[i]:
			add(new[j])
			j++
		default:
			i++
			j++
		}
	}
}

// stored is what a put needs of a row already in the generation.
type stored struct {
	seq     int64
	company string
	terms   terms
}

// termChanges are the rows to remove from and add to a term table: removals
// by (term, seq), additions by (term, customer id), since a new customer's
// seq is only known once inserted.
type termChanges struct {
	delTerms []string
	delSeqs  []int64
	addTerms []string
	addIDs   []string
}

// PutCustomers implements projections.Store. It fails with ErrFenced when
// the generation's checkpoint is not where this Store last saw it. On
// success it sets the Seq of each row of rows to the one the store holds.
func (s *Store) PutCustomers(ctx context.Context, gen projections.Generation, checkpoint domain.Position, rows []projections.CustomerRow) error {
	// The last row of a customer wins, in the place of its first.
	first := map[string]int{}
	var unique []projections.CustomerRow
	for i, r := range rows {
		if r.Customer == nil || r.Customer.ID == "" {
			return fmt.Errorf("postgres read model: put customers in generation %d: row %d has no customer id", gen, i)
		}
		if k, ok := first[r.Customer.ID]; ok {
			unique[k] = r
			continue
		}
		first[r.Customer.ID] = len(unique)
		unique = append(unique, r)
	}
	recs := make([]record, len(unique))
	ids := make([]string, len(unique))
	docs := make([][]byte, len(unique))
	newTerms := make([]terms, len(unique))
	termDocs := make([]string, len(unique))
	for i, r := range unique {
		recs[i] = recordOf(i, r)
		ids[i] = r.Customer.ID
		var err error
		if docs[i], err = json.Marshal(r.Customer); err != nil {
			return fmt.Errorf("postgres read model: put customers in generation %d: customer %s: %w", gen, r.Customer.ID, err)
		}
		newTerms[i] = termsOf(r.Customer)
		b, err := json.Marshal(newTerms[i])
		if err != nil {
			return fmt.Errorf("postgres read model: put customers in generation %d: customer %s: %w", gen, r.Customer.ID, err)
		}
		termDocs[i] = string(b)
	}
	var recJSON []byte
	if len(recs) > 0 {
		var err error
		if recJSON, err = json.Marshal(recs); err != nil {
			return fmt.Errorf("postgres read model: put customers in generation %d: %w", gen, err)
		}
	}

	t := tablesOf(gen)
	seqOf := make(map[string]int64, len(unique))
	err := s.write(ctx, projections.CustomersProjection, gen, checkpoint, func(tx pgx.Tx) error {
		if len(unique) == 0 {
			return nil
		}
		old, err := loadStored(ctx, tx, t, ids)
		if err != nil {
			return err
		}
		var search, expiry termChanges
		counts := map[string]int64{}
		for i, id := range ids {
			o, ok := old[id]
			if !ok {
				counts[recs[i].CompanyID]++
			} else {
				seqOf[id] = o.seq
				if o.company != recs[i].CompanyID {
					counts[o.company]--
					counts[recs[i].CompanyID]++
				}
			}
			for _, ch := range []struct {
				c        *termChanges
				old, new []string
			}{{&search, o.terms.Search, newTerms[i].Search}, {&expiry, o.terms.Expiry, newTerms[i].Expiry}} {
				diff(ch.old, ch.new, func(v string) {
					ch.c.delTerms, ch.c.delSeqs = append(ch.c.delTerms, v), append(ch.c.delSeqs, o.seq)
				}, func(v string) {
					ch.c.addTerms, ch.c.addIDs = append(ch.c.addTerms, v), append(ch.c.addIDs, id)
				})
			}
		}
		var countCompanies []string
		var countDeltas []int64
		for company, n := range counts {
			if n != 0 {
				countCompanies, countDeltas = append(countCompanies, company), append(countDeltas, n)
			}
		}

		b := &pgx.Batch{}
		b.Queue(upsertSQL(t), recJSON).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id string
				var seq int64
				if err := rows.Scan(&id, &seq); err != nil {
					return err
				}
				seqOf[id] = seq
			}
			return rows.Err()
		})
		b.Queue(`INSERT INTO `+t.docs+` AS d (seq, terms, doc)
			SELECT c.seq, u.terms::jsonb, u.doc FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u (id, terms, doc)
			JOIN `+t.customers+` c ON c.id = u.id
			ON CONFLICT (seq) DO UPDATE SET terms = excluded.terms, doc = excluded.doc`, ids, termDocs, docs)
		for _, tc := range []struct {
			table, col string
			ch         termChanges
		}{{t.search, "term", search}, {t.expiry, "expiry", expiry}} {
			if len(tc.ch.delTerms) > 0 {
				b.Queue(`DELETE FROM `+tc.table+` x USING unnest($1::text[], $2::bigint[]) AS d (v, seq)
					WHERE x.`+tc.col+` = d.v AND x.seq = d.seq`, tc.ch.delTerms, tc.ch.delSeqs)
			}
			if len(tc.ch.addTerms) > 0 {
				b.Queue(`INSERT INTO `+tc.table+` (`+tc.col+`, seq)
					SELECT a.v, c.seq FROM unnest($1::text[], $2::text[]) AS a (v, id) JOIN `+t.customers+` c ON c.id = a.id
					ON CONFLICT DO NOTHING`, tc.ch.addTerms, tc.ch.addIDs)
			}
		}
		if len(countCompanies) > 0 {
			b.Queue(`INSERT INTO `+t.counts+` AS k (company_id, n) SELECT * FROM unnest($1::text[], $2::bigint[])
				ON CONFLICT (company_id) DO UPDATE SET n = k.n + excluded.n`, countCompanies, countDeltas)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		if isUndefinedTable(err) {
			err = errors.Join(noGeneration(projections.CustomersProjection, gen), err)
		}
		return fmt.Errorf("postgres read model: put customers in generation %d: %w", gen, err)
	}
	for i := range rows {
		rows[i].Seq = seqOf[rows[i].Customer.ID]
	}
	return nil
}

// upsertSQL inserts new customers in input order, so their seqs follow it,
// and rewrites existing rows whose columns changed. A row with no change is
// left alone: an update writes a new version of the row and an entry in
// every index, and most events change only the document.
func upsertSQL(t customerTables) string {
	var cols, defs, set, was, now []string
	for _, c := range recordColumns {
		cols = append(cols, c.name)
		defs = append(defs, c.name+" "+c.typ)
		if c.name == "id" {
			continue
		}
		set = append(set, c.name+" = excluded."+c.name)
		was = append(was, "t."+c.name)
		now = append(now, "excluded."+c.name)
	}
	return `INSERT INTO ` + t.customers + ` AS t (` + strings.Join(cols, ", ") + `)
		SELECT ` + strings.Join(cols, ", ") + ` FROM jsonb_to_recordset($1::jsonb) AS u (ord bigint, ` + strings.Join(defs, ", ") + `)
		ORDER BY ord
		ON CONFLICT (id) DO UPDATE SET ` + strings.Join(set, ", ") + `
		WHERE (` + strings.Join(was, ", ") + `) IS DISTINCT FROM (` + strings.Join(now, ", ") + `)
		RETURNING id, seq`
}

func loadStored(ctx context.Context, tx pgx.Tx, t customerTables, ids []string) (map[string]stored, error) {
	rows, err := tx.Query(ctx, `SELECT c.id, c.seq, c.company_id, d.terms FROM `+t.customers+` c
		JOIN `+t.docs+` d ON d.seq = c.seq WHERE c.id = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]stored, len(ids))
	for rows.Next() {
		var id string
		var st stored
		var raw []byte
		if err := rows.Scan(&id, &st.seq, &st.company, &raw); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, &st.terms); err != nil {
			return nil, fmt.Errorf("terms of customer %s: %w", id, err)
		}
		out[id] = st
	}
	return out, rows.Err()
}

// selectRows reads whole rows; a WHERE on c follows.
func selectRows(t customerTables) string {
	return `SELECT c.seq, c.verification_status, c.state, c.aggregated_status, d.doc FROM ` + t.customers +
		` c JOIN ` + t.docs + ` d ON d.seq = c.seq`
}

func scanRow(sc interface{ Scan(...any) error }) (projections.CustomerRow, error) {
	var r projections.CustomerRow
	var doc []byte
	if err := sc.Scan(&r.Seq, &r.VerificationStatus, &r.State, &r.AggregatedStatus, &doc); err != nil {
		return r, err
	}
	r.Customer = new(domain.Customer)
	if err := json.Unmarshal(doc, r.Customer); err != nil {
		return r, fmt.Errorf("row %d: %w", r.Seq, err)
	}
	return r, nil
}

// LoadCustomers implements projections.Store.
func (s *Store) LoadCustomers(ctx context.Context, gen projections.Generation, ids []string) (map[string]projections.CustomerRow, error) {
	out := make(map[string]projections.CustomerRow, len(ids))
	if err := s.usable(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, selectRows(tablesOf(gen))+" WHERE c.id = ANY($1)", ids)
	if err == nil {
		defer rows.Close()
		for rows.Next() {
			var r projections.CustomerRow
			if r, err = scanRow(rows); err != nil {
				break
			}
			out[r.Customer.ID] = r
		}
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		if isUndefinedTable(err) {
			err = errors.Join(noGeneration(projections.CustomersProjection, gen), err)
		}
		return nil, fmt.Errorf("postgres read model: load customers of generation %d: %w", gen, err)
	}
	return out, nil
}

// Customer implements projections.Store.
func (s *Store) Customer(ctx context.Context, id string) (projections.CustomerRow, error) {
	var r projections.CustomerRow
	err := s.withActive(ctx, projections.CustomersProjection, func(gen projections.Generation) error {
		if gen == 0 {
			return projections.ErrNotFound
		}
		var err error
		r, err = scanRow(s.pool.QueryRow(ctx, selectRows(tablesOf(gen))+" WHERE c.id = $1", id))
		if errors.Is(err, pgx.ErrNoRows) {
			return projections.ErrNotFound
		}
		return err
	})
	if err != nil {
		return projections.CustomerRow{}, fmt.Errorf("postgres read model: customer %s: %w", id, err)
	}
	return r, nil
}

// where builds a WHERE clause with numbered placeholders.
type where struct {
	conds []string
	args  []any
}

// arg adds a value and returns its placeholder.
func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

func (w *where) add(cond string) { w.conds = append(w.conds, cond) }

// anyOf filters col on a set of values; an empty set filters nothing.
func (w *where) anyOf(col string, vals []string) {
	switch len(vals) {
	case 0:
	case 1:
		w.add(col + " = " + w.arg(vals[0]))
	default:
		w.add(col + " = ANY(" + w.arg(vals) + "::text[])")
	}
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// prefixEnd is the least string greater than every string that starts with
// p, in code point order (which is byte order of UTF-8 and so the "C"
// collation's): p with its last character incremented. ok is false when
// there is none (p is empty or all U+10FFFF); the range is then open.
func prefixEnd(p string) (end string, ok bool) {
	r := []rune(p)
	for len(r) > 0 {
		last := r[len(r)-1]
		switch {
		case last == utf8.MaxRune:
			r = r[:len(r)-1]
			continue
		case last == 0xD7FF:
			r[len(r)-1] = 0xE000 // surrogates are not characters
		default:
			r[len(r)-1] = last + 1
		}
		return string(r), true
	}
	return "", false
}

// customerFilter translates q's filters (projections.ListQuery.Matches) on
// the customers table aliased c. companyOnly reports that only company
// filters are set, which the count table answers.
func customerFilter(q projections.ListQuery, t customerTables) (w where, companyOnly bool) {
	if q.ScopeCompany != "" {
		w.add("c.company_id = " + w.arg(q.ScopeCompany))
	}
	w.anyOf("c.company_id", q.Companies)
	before := len(w.conds)
	for _, word := range projections.SearchWords(q.Q) {
		cond := "s.term >= " + w.arg(word)
		if end, ok := prefixEnd(word); ok {
			cond += " AND s.term < " + w.arg(end)
		}
		w.add("c.seq IN (SELECT s.seq FROM " + t.search + " s WHERE " + cond + ")")
	}
	w.anyOf("c.status", q.Statuses)
	w.anyOf("c.nationality", q.Nationalities)
	w.anyOf("c.risk", q.Risks)
	w.anyOf("c.video_call_status", q.VideoCallStatuses)
	w.anyOf("c.verification_status", q.VerificationStatuses)
	w.anyOf("c.state", q.States)
	w.anyOf("c.country", q.Countries)
	w.anyOf("c.created_by_agent", q.Agents)
	w.anyOf("c.referral_code", q.ReferralCodes)
	if len(q.VerificationLevels) > 0 {
		levels := make([]int32, len(q.VerificationLevels))
		for i, l := range q.VerificationLevels {
			levels[i] = int32(l)
		}
		w.add("c.verification_level = ANY(" + w.arg(levels) + "::integer[])")
	}
	if !q.Created.From.IsZero() {
		w.add("c.created_at >= " + w.arg(q.Created.From.UnixNano()))
	}
	if !q.Created.To.IsZero() {
		w.add("c.created_at < " + w.arg(q.Created.To.UnixNano()))
	}
	if !q.Updated.IsZero() {
		w.add("c.last_status_update IS NOT NULL")
		if !q.Updated.From.IsZero() {
			w.add("c.last_status_update >= " + w.arg(q.Updated.From.UnixNano()))
		}
		if !q.Updated.To.IsZero() {
			w.add("c.last_status_update < " + w.arg(q.Updated.To.UnixNano()))
		}
	}
	for _, f := range []struct {
		col  string
		vals []string
	}{{"c.tags", q.Tags}, {"c.access_roles", q.AccessRoles}, {"c.access_groups", q.AccessGroups}, {"c.doc_types", q.DocumentTypes}} {
		if len(f.vals) > 0 {
			w.add(f.col + " && " + w.arg(f.vals) + "::text[]")
		}
	}
	if !q.Expiry.IsZero() {
		var conds []string
		if q.Expiry.From != "" {
			conds = append(conds, "e.expiry >= "+w.arg(q.Expiry.From))
		}
		if q.Expiry.To != "" {
			conds = append(conds, "e.expiry <= "+w.arg(q.Expiry.To))
		}
		w.add("c.seq IN (SELECT e.seq FROM " + t.expiry + " e WHERE " + strings.Join(conds, " AND ") + ")")
	}
	if q.AgeMin != nil || q.AgeMax != nil {
		after, onOrBefore := q.BirthBounds()
		w.add("c.birth_date <> ''")
		if after != "" {
			w.add("c.birth_date > " + w.arg(after))
		}
		if onOrBefore != "" {
			w.add("c.birth_date <= " + w.arg(onOrBefore))
		}
	}
	return w, len(w.conds) == before
}

// orderBy is the list's order on alias a: the sort key, then seq, both in
// the query's direction. A missing last status update sorts first, as the
// zero time does in projections.LastStatusUpdate.
func orderBy(q projections.ListQuery, a string) (key, order string) {
	dir := " ASC"
	if q.Desc {
		dir = " DESC"
	}
	switch q.Sort {
	case projections.SortName:
		key = "name_sort"
	case projections.SortLastStatusUpdate:
		key = "last_status_update"
	default:
		key = "created_at"
	}
	order = a + key + dir
	if key == "last_status_update" {
		if q.Desc {
			order += " NULLS LAST"
		} else {
			order += " NULLS FIRST"
		}
	}
	return key, order + ", " + a + "seq" + dir
}

// listSQL is the page query and the count query of a list, with their
// arguments.
func listSQL(q projections.ListQuery, gen projections.Generation) (page string, pageArgs []any, count string, countArgs []any) {
	t := tablesOf(gen)
	w, companyOnly := customerFilter(q, t)
	countArgs = w.args
	if companyOnly {
		count, countArgs = companyCount(t.counts, q.ScopeCompany, q.Companies)
	} else {
		count = "SELECT count(*) FROM " + t.customers + " c" + w.String()
	}
	key, inner := orderBy(q, "c.")
	_, outer := orderBy(q, "p.")
	cond := w.String()
	limit, offset := w.arg(int64(q.PerPage)), w.arg(int64(q.Offset()))
	// The page's keys first, then its documents: the sort or the index walk
	// carries narrow rows only.
	page = `SELECT p.seq, p.verification_status, p.state, p.aggregated_status, d.doc FROM (
		SELECT c.seq, c.verification_status, c.state, c.aggregated_status, c.` + key + ` FROM ` + t.customers + ` c` + cond + `
		ORDER BY ` + inner + ` LIMIT ` + limit + ` OFFSET ` + offset + `
	) p JOIN ` + t.docs + ` d ON d.seq = p.seq ORDER BY ` + outer
	return page, w.args, count, countArgs
}

// companyCount sums a count table over the companies a query allows.
func companyCount(table, scope string, companies []string) (string, []any) {
	if scope != "" {
		if len(companies) > 0 && !slices.Contains(companies, scope) {
			return "SELECT 0::bigint", nil
		}
		companies = []string{scope}
	}
	if len(companies) == 0 {
		return "SELECT coalesce(sum(n), 0)::bigint FROM " + table, nil
	}
	return "SELECT coalesce(sum(n), 0)::bigint FROM " + table + " WHERE company_id = ANY($1::text[])", []any{companies}
}

// ListCustomers implements projections.Store. The page and the total go in
// one round trip and one implicit transaction, which also keeps the
// generation's tables from being dropped between the two.
func (s *Store) ListCustomers(ctx context.Context, q projections.ListQuery) (projections.ListPage, error) {
	var page projections.ListPage
	err := s.withActive(ctx, projections.CustomersProjection, func(gen projections.Generation) error {
		page = projections.ListPage{Page: q.Page, PerPage: q.PerPage}
		if gen == 0 {
			return nil
		}
		pageSQL, pageArgs, countSQL, countArgs := listSQL(q, gen)
		b := &pgx.Batch{}
		queueCustomPlans(b)
		b.Queue(pageSQL, pageArgs...).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				r, err := scanRow(rows)
				if err != nil {
					return err
				}
				page.Rows = append(page.Rows, r)
			}
			return rows.Err()
		})
		queueTotal(b, countSQL, countArgs, &page.Total)
		return s.pool.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return projections.ListPage{}, fmt.Errorf("postgres read model: list customers: %w", err)
	}
	return page, nil
}

// queueTotal adds a page's count query to the batch that fetches the page,
// so both travel in one round trip.
func queueTotal(b *pgx.Batch, countSQL string, args []any, total *int) {
	b.Queue(countSQL, args...).QueryRow(func(row pgx.Row) error {
		var n int64
		err := row.Scan(&n)
		*total = int(n)
		return err
	})
}
