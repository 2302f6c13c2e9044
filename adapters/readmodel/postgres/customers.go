package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

type customerTables struct {
	customers, docs, terms, termCounts, counts string
}

func tablesOf(gen projections.Generation) customerTables {
	n := strconv.FormatInt(int64(gen), 10)
	return customerTables{
		customers:  "read_customers_g" + n,
		docs:       "read_customer_docs_g" + n,
		terms:      "read_terms_g" + n,
		termCounts: "read_term_counts_g" + n,
		counts:     "read_customer_counts_g" + n,
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

// termField is a field of the terms table: its code in the field column;
// whether its values are exact (counted per value in the term counts
// table) rather than ranged over (search prefixes, expiry dates); whether
// a customer has one value of it at most; and whether it is counted only,
// with no rows in the terms table.
type termField struct {
	code                     string
	counted, single, rowless bool
}

// termFields are the fields of the terms table, in the order of terms:
// those with several values per customer, then the single-valued filters
// of singleFields, in that order.
var termFields = func() (fs [firstSingle + len(singleFields)]termField) {
	copy(fs[:], []termField{{code: "q"}, {code: "e"}, {code: "t", counted: true}, {code: "r", counted: true},
		{code: "g", counted: true}, {code: "d", counted: true}})
	for i, f := range singleFields {
		fs[firstSingle+i] = termField{code: f.code, counted: true, single: true, rowless: f.rowless}
	}
	return fs
}()

const (
	termSearch = iota
	termExpiry
	termTag
	termRole
	termGroup
	termDocType
	firstSingle
)

// singleFields are filters on one value per customer (each a column of the
// customers table) that the term counts count, so that a list filtered by
// one of them alone totals off those counts instead of counting its matches
// (through an index followed by the created date, count(*) of 186,904 took
// 45 to 50 ms at 1,000,000 customers).
//
// The first four, the values a customer keeps, also have rows in the terms
// table: alone, such a filter pages off the terms table's key, where
// through the column's index a deep page sorted every match (80 to 260 ms
// at 1,000,000 customers). The others change all the time: moving a terms
// row on every change made the customers projection's batches about twice
// as slow and, held to --max-read-lag, cut the write rate to a third. They
// are counted only (rowless), and page off their columns' indexes, which
// are followed by the created date for that.
//
// A customer without a value has neither row nor count: no filter asks for
// "" (a query that does reads the column).
var singleFields = [...]struct {
	column, code string // code: in the field column of the terms tables
	rowless      bool
	of           func(*record) string
	query        func(projections.ListQuery) []string
}{
	{"nationality", "n", false, func(r *record) string { return r.Nationality }, func(q projections.ListQuery) []string { return q.Nationalities }},
	{"country", "c", false, func(r *record) string { return r.Country }, func(q projections.ListQuery) []string { return q.Countries }},
	{"created_by_agent", "a", false, func(r *record) string { return r.CreatedByAgent }, func(q projections.ListQuery) []string { return q.Agents }},
	{"referral_code", "f", false, func(r *record) string { return r.ReferralCode }, func(q projections.ListQuery) []string { return q.ReferralCodes }},
	{"status", "s", true, func(r *record) string { return r.Status }, func(q projections.ListQuery) []string { return q.Statuses }},
	{"risk", "k", true, func(r *record) string { return r.Risk }, func(q projections.ListQuery) []string { return q.Risks }},
	{"video_call_status", "v", true, func(r *record) string { return r.VideoCallStatus }, func(q projections.ListQuery) []string { return q.VideoCallStatuses }},
	{"verification_level", "l", true, func(r *record) string { return strconv.Itoa(r.VerificationLevel) }, func(q projections.ListQuery) []string {
		if len(q.VerificationLevels) == 0 {
			return nil
		}
		levels := make([]string, len(q.VerificationLevels))
		for i, l := range q.VerificationLevels {
			levels[i] = strconv.Itoa(l)
		}
		return levels
	}},
	{"verification_status", "w", true, func(r *record) string { return r.VerificationStatus }, func(q projections.ListQuery) []string { return q.VerificationStatuses }},
	{"state", "z", true, func(r *record) string { return r.State }, func(q projections.ListQuery) []string { return q.States }},
}

// singleTerm is the rows of a single-valued field: none for "".
func singleTerm(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

// terms are a customer's rows in the terms table, per field of termFields,
// each sorted and without repeats.
type terms [len(termFields)][]string

// storedTerms is what read_customer_docs_gN keeps of a customer's terms:
// those that are not also columns of the customers row.
type storedTerms struct {
	Search []string `json:"q"`
	Expiry []string `json:"e"`
}

func sortedSet(vals []string) []string {
	out := slices.Clone(vals)
	slices.Sort(out)
	return slices.Compact(nonNil(out))
}

func termsOf(c *domain.Customer, rec *record) terms {
	var t terms
	t[termSearch] = sortedSet(projections.SearchTerms(c))
	for _, d := range c.Documents {
		// An empty expiry date is in no range (DateRange.Contains).
		if d.ExpiryDate != "" {
			t[termExpiry] = append(t[termExpiry], d.ExpiryDate)
		}
		t[termDocType] = append(t[termDocType], d.Type)
	}
	t[termExpiry] = sortedSet(t[termExpiry])
	t[termDocType] = sortedSet(t[termDocType])
	t[termTag] = sortedSet(c.Tags)
	t[termRole] = sortedSet(c.AccessRoles)
	t[termGroup] = sortedSet(c.AccessGroups)
	for i, f := range singleFields {
		t[firstSingle+i] = singleTerm(f.of(rec))
	}
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
	seq       int64
	company   string
	createdAt int64
	terms     terms
}

// storedCacheSize bounds the rows a storedCache holds (twice this many at
// most): the customers written recently, which a live projection writes
// again soon.
const storedCacheSize = 8192

// storedCache is a projections.RecentCache of stored rows under a lock. A
// nil cache holds nothing.
type storedCache struct {
	mu     sync.Mutex
	recent *projections.RecentCache[stored]
}

func newStoredCache() *storedCache {
	return &storedCache{recent: projections.NewRecentCache[stored](storedCacheSize)}
}

func (c *storedCache) get(id string) (stored, bool) {
	if c == nil {
		return stored{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recent.Get(id)
}

func (c *storedCache) put(id string, st stored) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recent.Put(id, st)
}

// termChanges are the rows to remove from and add to the terms table:
// removals by key, additions by customer id, since a new customer's seq is
// only known once inserted.
type termChanges struct {
	delFields, delValues []string
	delCreated, delSeqs  []int64
	addFields, addValues []string
	addCreated           []int64
	addIDs, addCompanies []string
}

// termCount is a row of the term counts table.
type termCount struct {
	field, value, company string
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
		newTerms[i] = termsOf(r.Customer, &recs[i])
		b, err := json.Marshal(storedTerms{Search: newTerms[i][termSearch], Expiry: newTerms[i][termExpiry]})
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
	// The terms to remove come from what the rows hold now: known from this
	// Store's earlier writes when it can be, read otherwise. Both may be
	// stale only if another writer wrote in between, and then the write's
	// compare-and-set refuses the whole batch.
	recent := s.recentRows(projections.CustomersProjection, gen)
	old := make(map[string]stored, len(unique))
	var missing []string
	for _, id := range ids {
		if st, ok := recent.get(id); ok {
			old[id] = st
		} else {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		loaded, err := s.loadStored(ctx, t, missing)
		if err != nil {
			return putFailed(gen, err)
		}
		maps.Copy(old, loaded)
	}
	err := s.write(ctx, projections.CustomersProjection, gen, checkpoint, func(b *pgx.Batch) {
		if len(unique) == 0 {
			return
		}
		var tc termChanges
		counts := map[string]int64{}
		termCounts := map[termCount]int64{}
		for i, id := range ids {
			rec := recs[i]
			o, ok := old[id]
			if !ok {
				counts[rec.CompanyID]++
			} else {
				seqOf[id] = o.seq
				if o.company != rec.CompanyID {
					counts[o.company]--
					counts[rec.CompanyID]++
				}
			}
			// The terms rows carry the company and created date: when either
			// changes (the domain never does it), all of them are rewritten.
			rewrite := ok && (o.company != rec.CompanyID || o.createdAt != rec.CreatedAt)
			for f, field := range termFields {
				del := func(v string) {
					if field.counted {
						termCounts[termCount{field.code, v, o.company}]--
					}
					if field.rowless {
						return
					}
					tc.delFields, tc.delValues = append(tc.delFields, field.code), append(tc.delValues, v)
					tc.delCreated, tc.delSeqs = append(tc.delCreated, o.createdAt), append(tc.delSeqs, o.seq)
				}
				add := func(v string) {
					if field.counted {
						termCounts[termCount{field.code, v, rec.CompanyID}]++
					}
					if field.rowless {
						return
					}
					tc.addFields, tc.addValues = append(tc.addFields, field.code), append(tc.addValues, v)
					tc.addCreated, tc.addIDs = append(tc.addCreated, rec.CreatedAt), append(tc.addIDs, id)
					tc.addCompanies = append(tc.addCompanies, rec.CompanyID)
				}
				if rewrite {
					diff(o.terms[f], nil, del, add)
					diff(nil, newTerms[i][f], del, add)
				} else {
					diff(o.terms[f], newTerms[i][f], del, add)
				}
			}
		}
		var countCompanies []string
		var countDeltas []int64
		for company, n := range counts {
			if n != 0 {
				countCompanies, countDeltas = append(countCompanies, company), append(countDeltas, n)
			}
		}

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
		if len(tc.delValues) > 0 {
			b.Queue(`DELETE FROM `+t.terms+` x USING unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS d (f, v, created, seq)
				WHERE x.field = d.f::"char" AND x.value = d.v AND x.created_at = d.created AND x.seq = d.seq`,
				tc.delFields, tc.delValues, tc.delCreated, tc.delSeqs)
		}
		if len(tc.addValues) > 0 {
			b.Queue(`INSERT INTO `+t.terms+` (field, value, created_at, seq, company_id)
				SELECT a.f::"char", a.v, a.created, c.seq, a.company
				FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[]) AS a (f, v, created, id, company)
				JOIN `+t.customers+` c ON c.id = a.id
				ON CONFLICT DO NOTHING`, tc.addFields, tc.addValues, tc.addCreated, tc.addIDs, tc.addCompanies)
		}
		var countFields, countValues, countOf []string
		var countN []int64
		for k, n := range termCounts {
			if n != 0 {
				countFields, countValues, countOf, countN = append(countFields, k.field), append(countValues, k.value), append(countOf, k.company), append(countN, n)
			}
		}
		if len(countN) > 0 {
			b.Queue(`INSERT INTO `+t.termCounts+` AS k (field, value, company_id, n)
				SELECT f::"char", v, co, n FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u (f, v, co, n)
				ON CONFLICT (field, value, company_id) DO UPDATE SET n = k.n + excluded.n`, countFields, countValues, countOf, countN)
		}
		if len(countCompanies) > 0 {
			b.Queue(`INSERT INTO `+t.counts+` AS k (company_id, n) SELECT * FROM unnest($1::text[], $2::bigint[])
				ON CONFLICT (company_id) DO UPDATE SET n = k.n + excluded.n`, countCompanies, countDeltas)
		}
	})
	if err != nil {
		return putFailed(gen, err)
	}
	for i, id := range ids {
		recent.put(id, stored{seq: seqOf[id], company: recs[i].CompanyID, createdAt: recs[i].CreatedAt, terms: newTerms[i]})
	}
	for i := range rows {
		rows[i].Seq = seqOf[rows[i].Customer.ID]
	}
	return nil
}

func putFailed(gen projections.Generation, err error) error {
	if isUndefinedTable(err) {
		err = errors.Join(noGeneration(projections.CustomersProjection, gen), err)
	}
	return fmt.Errorf("postgres read model: put customers in generation %d: %w", gen, err)
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

func (s *Store) loadStored(ctx context.Context, t customerTables, ids []string) (map[string]stored, error) {
	singleCols := make([]string, len(singleFields))
	for i, f := range singleFields {
		singleCols[i] = "c." + f.column + "::text"
	}
	rows, err := s.pool.Query(ctx, `SELECT c.id, c.seq, c.company_id, c.created_at, c.tags, c.access_roles, c.access_groups, c.doc_types, d.terms, `+
		strings.Join(singleCols, ", ")+` FROM `+t.customers+` c JOIN `+t.docs+` d ON d.seq = c.seq WHERE c.id = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]stored, len(ids))
	singles := make([]string, len(singleFields))
	for rows.Next() {
		var id string
		var st stored
		var raw []byte
		var kept storedTerms
		dest := []any{&id, &st.seq, &st.company, &st.createdAt, &st.terms[termTag], &st.terms[termRole],
			&st.terms[termGroup], &st.terms[termDocType], &raw}
		for i := range singles {
			dest = append(dest, &singles[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, &kept); err != nil {
			return nil, fmt.Errorf("terms of customer %s: %w", id, err)
		}
		st.terms[termSearch], st.terms[termExpiry] = kept.Search, kept.Expiry
		// The arrays are in the customer's order, with repeats.
		for _, f := range []int{termTag, termRole, termGroup, termDocType} {
			st.terms[f] = sortedSet(st.terms[f])
		}
		for i, v := range singles {
			st.terms[firstSingle+i] = singleTerm(v)
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

// collectRows reads rows that selectRows selected, and closes them.
func collectRows(rows pgx.Rows) ([]projections.CustomerRow, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (projections.CustomerRow, error) { return scanRow(row) })
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
	var found []projections.CustomerRow
	if err == nil {
		found, err = collectRows(rows)
	}
	for _, r := range found {
		out[r.Customer.ID] = r
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

// termFilter is a filter on one field of the terms table: any of values,
// or else the values in a range whose empty bounds are open.
type termFilter struct {
	field      termField
	values     []string
	from, to   string
	toIncluded bool
}

// on is the filter's condition on the terms table aliased x.
func (f termFilter) on(w *where, x string) string {
	conds := []string{x + ".field = '" + f.field.code + "'"}
	switch {
	case len(f.values) > 0:
		conds = append(conds, f.valuesOn(w, x))
	default:
		if f.from != "" {
			conds = append(conds, x+".value >= "+w.arg(f.from))
		}
		if f.to != "" {
			op := " < "
			if f.toIncluded {
				op = " <= "
			}
			conds = append(conds, x+".value"+op+w.arg(f.to))
		}
	}
	return strings.Join(conds, " AND ")
}

// valuesOn is the condition on the values of table aliased x.
func (f termFilter) valuesOn(w *where, x string) string {
	if len(f.values) == 1 {
		return x + ".value = " + w.arg(f.values[0])
	}
	return x + ".value = ANY(" + w.arg(f.values) + "::text[])"
}

// oneRowEach reports that a customer matches the filter through one row of
// the terms table at most (the rows of a customer have distinct values).
func (f termFilter) oneRowEach() bool {
	return len(f.values) == 1 || (f.field.single && len(f.values) > 0)
}

// customerFilter translates q's filters (projections.ListQuery.Matches) on
// the customers table aliased c. companyOnly reports that only company
// filters are set, which the count table answers; lone is set when
// besides companies q filters on one field of the terms table only.
func customerFilter(q projections.ListQuery, t customerTables) (w where, companyOnly bool, lone *termFilter) {
	if q.ScopeCompany != "" {
		w.add("c.company_id = " + w.arg(q.ScopeCompany))
	}
	w.anyOf("c.company_id", q.Companies)
	before := len(w.conds)
	var onTerms []termFilter
	inTerms := func(f termFilter) {
		onTerms = append(onTerms, f)
		w.add("c.seq IN (SELECT x.seq FROM " + t.terms + " x WHERE " + f.on(&w, "x") + ")")
	}
	for _, word := range projections.SearchWords(q.Q) {
		f := termFilter{field: termFields[termSearch], from: word}
		f.to, _ = prefixEnd(word)
		inTerms(f)
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
	// One value is an equality, which an index followed by the sort key
	// reads in page order; ANY would sort.
	switch levels := q.VerificationLevels; len(levels) {
	case 0:
	case 1:
		w.add("c.verification_level = " + w.arg(int32(levels[0])))
	default:
		ints := make([]int32, len(levels))
		for i, l := range levels {
			ints[i] = int32(l)
		}
		w.add("c.verification_level = ANY(" + w.arg(ints) + "::integer[])")
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
	// Among other filters the arrays' GIN indexes serve these; alone, the
	// terms table does (listSQL).
	for _, f := range []struct {
		col   string
		field int
		vals  []string
	}{{"c.tags", termTag, q.Tags}, {"c.access_roles", termRole, q.AccessRoles}, {"c.access_groups", termGroup, q.AccessGroups}, {"c.doc_types", termDocType, q.DocumentTypes}} {
		if len(f.vals) > 0 {
			onTerms = append(onTerms, termFilter{field: termFields[f.field], values: f.vals})
			w.add(f.col + " && " + w.arg(f.vals) + "::text[]")
		}
	}
	if !q.Expiry.IsZero() {
		inTerms(termFilter{field: termFields[termExpiry], from: q.Expiry.From, to: q.Expiry.To, toIncluded: true})
	}
	// The columns serve these among other filters; alone, their totals come
	// from the term counts and, for those with rows, their pages from the
	// terms table (singleFields).
	for i, f := range singleFields {
		if vals := f.query(q); len(vals) > 0 && !slices.Contains(vals, "") {
			onTerms = append(onTerms, termFilter{field: termFields[firstSingle+i], values: vals})
		}
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
	if len(onTerms) == 1 && len(w.conds) == before+1 {
		lone = &onTerms[0]
	}
	return w, len(w.conds) == before, lone
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

// listPlan is how a list is read: the page query and the count query, with
// their arguments.
type listPlan struct {
	page, count         string
	pageArgs, countArgs []any
	// keysOnly: the page query returns only the page's seqs, in order; the
	// rows are read after them (ListCustomers). mergedCount: the count
	// query intersects streams. Both run under queueMergeSettings.
	keysOnly, mergedCount bool
}

// listSQL is how q is read from generation gen. Where merging q's filters
// as streams (streamsOf) would serve the page or the count, merge says
// whether to.
func listSQL(q projections.ListQuery, gen projections.Generation, merge func([]stream) bool) listPlan {
	t := tablesOf(gen)
	w, companyOnly, lone := customerFilter(q, t)
	if lone != nil && !lone.field.rowless && q.Sort == projections.SortCreatedAt {
		return loneTermsSQL(q, t, *lone)
	}
	var (
		plan = listPlan{countArgs: w.args}
		// Merged in ascending order for the count: the planner reads an
		// index backwards for a merge join only to serve an ORDER BY.
		cw, pw where
		merged string
	)
	streams := streamsOf(q)
	countsServe := lone != nil && lone.counted()
	if streams != nil && (q.Sort == projections.SortCreatedAt || !countsServe) && merge(streams) {
		merged = mergedSQL(streams, q, t, &cw, false)
	}
	switch {
	case companyOnly:
		plan.count, plan.countArgs = companyCount(t.counts, q.ScopeCompany, q.Companies)
	case countsServe:
		plan.count, plan.countArgs = termCountSQL(q, t, *lone)
	case merged != "":
		plan.count, plan.countArgs, plan.mergedCount = "SELECT count(*) FROM "+merged, cw.args, true
	default:
		plan.count = "SELECT count(*) FROM " + t.customers + " c" + w.String()
	}
	if merged != "" && q.Sort == projections.SortCreatedAt {
		_, order := orderBy(q, "m0.")
		plan.page = "SELECT m0.seq FROM " + mergedSQL(streams, q, t, &pw, q.Desc) + " ORDER BY " + order +
			" LIMIT " + pw.arg(int64(q.PerPage)) + " OFFSET " + pw.arg(int64(q.Offset()))
		plan.pageArgs, plan.keysOnly = pw.args, true
		return plan
	}
	key, inner := orderBy(q, "c.")
	cond := w.String()
	limit, offset := w.arg(int64(q.PerPage)), w.arg(int64(q.Offset()))
	// The page's keys first, then its rows and documents: the keys alone
	// can come off an index (a filter's, followed by the sort key) without
	// visiting the rows the offset skips.
	plan.page = pageOf(t, "SELECT c.seq, c."+key+" FROM "+t.customers+" c"+cond+`
		ORDER BY `+inner+" LIMIT "+limit+" OFFSET "+offset, q)
	plan.pageArgs = w.args
	return plan
}

// A stream is the matches of a filter that indexes list in created order
// (created date, then seq): for one value, a counted column's index, the
// company's, or the terms table's key; for several, those of each value,
// merged in order without repeats (a customer can have several tags,
// roles, groups or document types). Joined on those two columns under
// queueMergeSettings, streams intersect by merging, reading index entries
// only and in order: a page sorted by created date stops once it is full,
// and a count visits no row. Through bitmaps of their indexes (what the
// planner chooses) every match was also visited in the table: at
// 1,000,000 customers status and risk counted in 73 ms that way, and in 27
// by merging; company, status and a created range, deep page, 47 ms
// against 6; two statuses and risk, first page, 595 ms against 60.
type stream struct {
	column string    // of the customers table; "" for the terms table
	field  termField // in the terms table and the term counts
	values []string  // as the term counts hold them
}

// streamsOf is q's filters as streams, or nil when q has a filter that is
// not one, or no two of them besides companies. Free text, ranges other
// than the created date, and a terms field asked for "" (such customers
// have no terms row) are no streams: those lists stay with the planner.
func streamsOf(q projections.ListQuery) []stream {
	if len(projections.SearchWords(q.Q)) > 0 || !q.Updated.IsZero() || !q.Expiry.IsZero() || q.AgeMin != nil || q.AgeMax != nil {
		return nil
	}
	var streams []stream
	if q.ScopeCompany != "" {
		streams = append(streams, stream{column: "company_id", values: []string{q.ScopeCompany}})
	}
	if len(q.Companies) > 0 {
		streams = append(streams, stream{column: "company_id", values: q.Companies})
	}
	companies := len(streams)
	for i, f := range singleFields {
		switch vals := f.query(q); {
		case len(vals) == 0:
		case f.rowless:
			streams = append(streams, stream{column: f.column, field: termFields[firstSingle+i], values: vals})
		case slices.Contains(vals, ""):
			return nil
		default:
			streams = append(streams, stream{field: termFields[firstSingle+i], values: vals})
		}
	}
	for _, f := range []struct {
		field int
		vals  []string
	}{{termTag, q.Tags}, {termRole, q.AccessRoles}, {termGroup, q.AccessGroups}, {termDocType, q.DocumentTypes}} {
		switch {
		case len(f.vals) == 0:
		case slices.Contains(f.vals, ""):
			return nil
		default:
			streams = append(streams, stream{field: termFields[f.field], values: f.vals})
		}
	}
	if len(streams) < 2 || len(streams) == companies {
		return nil
	}
	return streams
}

// streamSizesSQL is a query of how many entries each stream holds: from the
// customer counts for companies, from the term counts for the others.
func streamSizesSQL(streams []stream, t customerTables) (string, []any) {
	var w where
	sums := make([]string, len(streams))
	for i, s := range streams {
		if s.column == "company_id" {
			sums[i] = "(SELECT coalesce(sum(n), 0) FROM " + t.counts + " WHERE company_id = ANY(" + w.arg(s.values) + "::text[]))"
			continue
		}
		sums[i] = "(SELECT coalesce(sum(n), 0) FROM " + t.termCounts + " WHERE field = '" + s.field.code +
			"' AND value = ANY(" + w.arg(s.values) + "::text[]))"
	}
	return "SELECT ARRAY[" + strings.Join(sums, ", ") + "]::bigint[]", w.args
}

// worthMerging reports that streams of these sizes intersect faster by
// merging than the planner's way, which reads the smallest and visits each
// of its rows to check the other filters. Merging reads every entry of
// every stream, at about a twentieth of a visit's cost (at 1,000,000
// customers, status INACTIVE with risk NORMAL: 11,547 and 500,217
// entries, 51 ms merged, first page, against 23).
func worthMerging(sizes []int64) bool {
	var sum int64
	for _, n := range sizes {
		sum += n
	}
	return len(sizes) > 0 && slices.Min(sizes)*20 >= sum
}

// mergedSQL is the FROM and WHERE clauses that intersect the streams, each
// read in created order, descending when desc.
func mergedSQL(streams []stream, q projections.ListQuery, t customerTables, w *where, desc bool) string {
	var lo, hi string
	if !q.Created.From.IsZero() {
		lo = w.arg(q.Created.From.UnixNano())
	}
	if !q.Created.To.IsZero() {
		hi = w.arg(q.Created.To.UnixNano())
	}
	// cond is the condition of one value of s on alias x, within the
	// created range: the range goes on every stream, so that each index
	// reads it alone.
	cond := func(s stream, x, v string) string {
		var c string
		switch s.column {
		case "":
			c = x + ".field = '" + s.field.code + "' AND " + x + ".value = " + w.arg(v)
		case "verification_level":
			level, _ := strconv.Atoi(v) // singleFields made it from an int
			c = x + "." + s.column + " = " + w.arg(int32(level))
		default:
			c = x + "." + s.column + " = " + w.arg(v)
		}
		if lo != "" {
			c += " AND " + x + ".created_at >= " + lo
		}
		if hi != "" {
			c += " AND " + x + ".created_at < " + hi
		}
		return c
	}
	// The order a stream of several values is merged in, which the merge
	// joins read every stream in.
	_, order := orderBy(projections.ListQuery{Sort: projections.SortCreatedAt, Desc: desc}, "")
	var from strings.Builder
	var where []string
	for i, s := range streams {
		x := "m" + strconv.Itoa(i)
		table := t.terms
		if s.column != "" {
			table = t.customers
		}
		if i > 0 {
			from.WriteString(" JOIN ")
		}
		if len(s.values) == 1 {
			from.WriteString(table + " " + x)
			where = append(where, cond(s, x, s.values[0]))
		} else {
			branches := make([]string, len(s.values))
			for j, v := range s.values {
				branches[j] = "(SELECT x.created_at, x.seq FROM " + table + " x WHERE " + cond(s, "x", v) + " ORDER BY " + order + ")"
			}
			// DISTINCT drops the repeats of a customer with several of the
			// values, and proves to the planner that none is left: a merge
			// join then needs no copy of the stream to go back in.
			from.WriteString("(SELECT DISTINCT created_at, seq FROM (" + strings.Join(branches, " UNION ALL ") +
				") u ORDER BY " + order + ") " + x)
		}
		if i > 0 {
			from.WriteString(" ON " + x + ".created_at = m0.created_at AND " + x + ".seq = m0.seq")
		}
	}
	if len(where) == 0 {
		return from.String()
	}
	return from.String() + " WHERE " + strings.Join(where, " AND ")
}

// pageOf completes the query of a page's keys (seq and the sort key, as p)
// with the rows and documents, in the page's order.
//
// The customers table comes first in the text: PostgreSQL locks tables in
// that order, and dropping a generation takes the customers table first
// (customers.down.sql), so a reader never holds one of its tables while
// waiting for another that the drop holds (a deadlock, seen with the terms
// table first).
func pageOf(t customerTables, keys string, q projections.ListQuery) string {
	_, outer := orderBy(q, "p.")
	return `SELECT p.seq, c.verification_status, c.state, c.aggregated_status, d.doc FROM ` + t.customers + ` c
		JOIN (` + keys + `) p ON p.seq = c.seq JOIN ` + t.docs + ` d ON d.seq = c.seq ORDER BY ` + outer
}

// loneTermsSQL is listSQL for a query in the default order whose one filter
// besides companies is on the terms table: the page and the total come off
// the terms table's key, which holds the sort key and the company, and for
// one exact value the total comes off the term counts.
func loneTermsSQL(q projections.ListQuery, t customerTables, f termFilter) listPlan {
	var (
		pw, cw    where
		count     string
		countArgs []any
	)
	pageCond := f.on(&pw, "x") + companyScope(q, &pw, "x")
	_, order := orderBy(q, "x.")
	keys := "SELECT x.seq, x.created_at FROM " + t.terms + " x WHERE " + pageCond
	if !f.oneRowEach() {
		keys += " GROUP BY x.seq, x.created_at"
	}
	keys += " ORDER BY " + order + " LIMIT " + pw.arg(int64(q.PerPage)) + " OFFSET " + pw.arg(int64(q.Offset()))
	switch {
	case f.counted():
		count, countArgs = termCountSQL(q, t, f)
	case f.oneRowEach():
		count, countArgs = "SELECT count(*) FROM "+t.terms+" x WHERE "+f.on(&cw, "x")+companyScope(q, &cw, "x"), cw.args
	default:
		count, countArgs = "SELECT count(DISTINCT x.seq) FROM "+t.terms+" x WHERE "+f.on(&cw, "x")+companyScope(q, &cw, "x"), cw.args
	}
	return listPlan{page: pageOf(t, keys, q), pageArgs: pw.args, count: count, countArgs: countArgs}
}

// counted reports that the term counts hold the filter's total: its
// values are exact and a customer matches through one of them at most.
func (f termFilter) counted() bool { return f.field.counted && f.oneRowEach() }

// termCountSQL is the total of a query whose one filter besides companies
// is f, off the term counts.
func termCountSQL(q projections.ListQuery, t customerTables, f termFilter) (string, []any) {
	var w where
	return "SELECT coalesce(sum(k.n), 0)::bigint FROM " + t.termCounts + " k WHERE k.field = '" + f.field.code +
		"' AND " + f.valuesOn(&w, "k") + companyScope(q, &w, "k"), w.args
}

// companyScope is q's company filters on table x, each preceded by AND.
func companyScope(q projections.ListQuery, w *where, x string) string {
	var conds []string
	if q.ScopeCompany != "" {
		conds = append(conds, x+".company_id = "+w.arg(q.ScopeCompany))
	}
	if len(q.Companies) > 0 {
		conds = append(conds, x+".company_id = ANY("+w.arg(q.Companies)+"::text[])")
	}
	return strings.Join(append([]string{""}, conds...), " AND ")
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
// generation's tables from being dropped between the two; a page of
// merged streams takes a second round trip (listKeyed).
func (s *Store) ListCustomers(ctx context.Context, q projections.ListQuery) (projections.ListPage, error) {
	var page projections.ListPage
	err := s.withActive(ctx, projections.CustomersProjection, func(gen projections.Generation) error {
		page = projections.ListPage{Page: q.Page, PerPage: q.PerPage}
		if gen == 0 {
			return nil
		}
		plan, err := s.planList(ctx, q, gen)
		if err != nil {
			return err
		}
		if plan.keysOnly {
			return s.listKeyed(ctx, gen, plan, &page)
		}
		b := &pgx.Batch{}
		queueCustomerListPlans(b)
		b.Queue(plan.page, plan.pageArgs...).Query(func(rows pgx.Rows) (err error) {
			page.Rows, err = collectRows(rows)
			return err
		})
		if plan.mergedCount {
			queueMergeSettings(b)
		}
		queueTotal(b, plan.count, plan.countArgs, &page.Total)
		return s.pool.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return projections.ListPage{}, fmt.Errorf("postgres read model: list customers: %w", err)
	}
	return page, nil
}

// planList is how q is read from generation gen: its filters are merged
// as streams when the sizes the counts give them make that worth it, which
// costs a round trip to learn.
func (s *Store) planList(ctx context.Context, q projections.ListQuery, gen projections.Generation) (listPlan, error) {
	var err error
	plan := listSQL(q, gen, func(streams []stream) bool {
		sql, args := streamSizesSQL(streams, tablesOf(gen))
		var sizes []int64
		err = s.pool.QueryRow(ctx, sql, args...).Scan(&sizes)
		return err == nil && worthMerging(sizes)
	})
	return plan, err
}

// listKeyed reads a list whose page query returns seqs only: the seqs and
// the total first, then the rows of those seqs. Both round trips share one
// read-only transaction and its snapshot, so the rows are those the page
// was chosen from, and the generation's tables stay while it lasts. The
// merge settings, which a row read by seq must not run under, end with the
// savepoint they were made in.
func (s *Store) listKeyed(ctx context.Context, gen projections.Generation, plan listPlan, page *projections.ListPage) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A connection left in a transaction by a failure is closed, not
	// reused.
	defer conn.Release()
	var seqs []int64
	b := &pgx.Batch{}
	b.Queue("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
	queueCustomerListPlans(b)
	b.Queue("SAVEPOINT merged")
	queueMergeSettings(b)
	b.Queue(plan.page, plan.pageArgs...).Query(func(rows pgx.Rows) (err error) {
		seqs, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	if plan.mergedCount {
		queueTotal(b, plan.count, plan.countArgs, &page.Total)
	}
	b.Queue("ROLLBACK TO SAVEPOINT merged")
	if !plan.mergedCount {
		queueTotal(b, plan.count, plan.countArgs, &page.Total)
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	var found []projections.CustomerRow
	b = &pgx.Batch{}
	b.Queue(selectRows(tablesOf(gen))+" WHERE c.seq = ANY($1)", seqs).Query(func(rows pgx.Rows) (err error) {
		found, err = collectRows(rows)
		return err
	})
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	bySeq := make(map[int64]projections.CustomerRow, len(found))
	for _, r := range found {
		bySeq[r.Seq] = r
	}
	for _, seq := range seqs {
		r, ok := bySeq[seq]
		if !ok {
			return fmt.Errorf("row %d of the page is missing from its own snapshot", seq)
		}
		page.Rows = append(page.Rows, r)
	}
	return nil
}

// queueMergeSettings makes the rest of the batch's transaction intersect
// streams (see stream) by merging them in index order. Left to itself,
// the planner, which cannot estimate how streams overlap (it takes them
// for one row), joins them by hash, by nested loop over index lookups or
// by bitmaps that visit every match, each of which costs several times
// the merge at 1,000,000 customers. What is disabled is priced out, not
// forbidden, and the price would bring in JIT compilation. Nothing else a
// list reads runs under these settings: they would turn a page's twenty
// row lookups into full scans. They come after queueCustomerListPlans in
// the same transaction, which has already turned parallel workers off.
func queueMergeSettings(b *pgx.Batch) {
	b.Queue(`SELECT set_config('enable_nestloop', 'off', true), set_config('enable_hashjoin', 'off', true),
		set_config('enable_material', 'off', true), set_config('enable_sort', 'off', true),
		set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true),
		set_config('jit', 'off', true)`)
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
