package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// Fields of customer_terms, one per multi-valued filter. The code is the
// field's tag in the compact copy of a customer's terms kept on its row.
var termFields = [...]struct {
	code byte
	name string
}{
	{'q', "q"},
	{'t', "tag"},
	{'r', "access_role"},
	{'g', "access_group"},
	{'d', "doc_type"},
	{'e', "expiry"},
}

const (
	fieldQ = iota
	fieldTag
	fieldRole
	fieldGroup
	fieldDocType
	fieldExpiry
)

type term struct {
	field int
	value string
}

func compareTerms(a, b term) int {
	if a.field != b.field {
		return a.field - b.field
	}
	return strings.Compare(a.value, b.value)
}

// termsOf lists a customer's terms, sorted and without duplicates.
func termsOf(r projections.CustomerRow, dst []term) []term {
	c := r.Customer
	dst = dst[:0]
	for _, t := range projections.SearchTerms(c) {
		dst = append(dst, term{fieldQ, t})
	}
	for _, v := range c.Tags {
		dst = append(dst, term{fieldTag, v})
	}
	for _, v := range c.AccessRoles {
		dst = append(dst, term{fieldRole, v})
	}
	for _, v := range c.AccessGroups {
		dst = append(dst, term{fieldGroup, v})
	}
	for _, d := range c.Documents {
		dst = append(dst, term{fieldDocType, d.Type})
		// An empty expiry date is in no range (DateRange.Contains).
		if d.ExpiryDate != "" {
			dst = append(dst, term{fieldExpiry, d.ExpiryDate})
		}
	}
	slices.SortFunc(dst, compareTerms)
	return slices.CompactFunc(dst, func(a, b term) bool { return compareTerms(a, b) == 0 })
}

// encodeTerms writes sorted terms compactly: field code, length, value.
func encodeTerms(dst []byte, ts []term) []byte {
	dst = dst[:0]
	for _, t := range ts {
		dst = append(dst, termFields[t.field].code)
		dst = binary.AppendUvarint(dst, uint64(len(t.value)))
		dst = append(dst, t.value...)
	}
	return dst
}

func decodeTerms(b []byte, dst []term) ([]term, error) {
	dst = dst[:0]
	for len(b) > 0 {
		field := bytes.IndexByte([]byte{'q', 't', 'r', 'g', 'd', 'e'}, b[0])
		n, k := binary.Uvarint(b[1:])
		if field < 0 || k <= 0 || uint64(len(b)-1-k) < n {
			return nil, errors.New("corrupt terms")
		}
		start := 1 + k
		dst = append(dst, term{field, string(b[start : start+int(n)])})
		b = b[start+int(n):]
	}
	return dst, nil
}

func customersTable(gen projections.Generation) string {
	return "customers_g" + strconv.FormatInt(int64(gen), 10)
}

func termsTable(gen projections.Generation) string {
	return "customer_terms_g" + strconv.FormatInt(int64(gen), 10)
}

func docsTable(gen projections.Generation) string {
	return "customer_docs_g" + strconv.FormatInt(int64(gen), 10)
}

func countsTable(gen projections.Generation) string {
	return "customer_counts_g" + strconv.FormatInt(int64(gen), 10)
}

// The columns of customers_gN a put writes, in the order of putArgs.
var customerColumns = []string{"company_id", "status", "nationality", "risk", "video_call_status",
	"verification_level", "verification_status", "state", "country", "created_by_agent", "referral_code",
	"birth_date", "created_at", "last_status_update", "name_sort", "revision", "aggregated_status"}

const (
	colCompany = 0
	numColumns = 17
)

// putStmts are the statements of one PutCustomers transaction.
type putStmts struct {
	find, insert, insertDoc, updateDoc, delTerm, addTerm, count *sql.Stmt
	// updates by the set of columns they write: a replace writes only the
	// columns that changed, since SQLite rewrites the entries of every
	// index on a column an UPDATE sets, changed or not.
	updates map[uint32]*sql.Stmt
	tx      *sql.Tx
	table   string
}

func (p *putStmts) prepare(ctx context.Context, tx *sql.Tx, gen projections.Generation) error {
	c, d, t := customersTable(gen), docsTable(gen), termsTable(gen)
	p.tx, p.table, p.updates = tx, c, map[uint32]*sql.Stmt{}
	cols := strings.Join(customerColumns, ", ")
	prefixed := "c." + strings.Join(customerColumns, ", c.")
	for _, s := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&p.find, "SELECT c.seq, " + prefixed + ", d.terms FROM " + c + " AS c JOIN " + d + " AS d ON d.seq = c.seq WHERE c.id = ?"},
		{&p.insert, "INSERT INTO " + c + " (id, " + cols + ") VALUES (?, " + marks(len(customerColumns)) + ")"},
		{&p.insertDoc, "INSERT INTO " + d + " (seq, terms, doc) VALUES (?, ?, ?)"},
		{&p.updateDoc, "UPDATE " + d + " SET terms = ?, doc = ? WHERE seq = ?"},
		{&p.delTerm, "DELETE FROM " + t + " WHERE field = ? AND value = ? AND seq = ?"},
		{&p.addTerm, "INSERT OR IGNORE INTO " + t + " (field, value, seq) VALUES (?, ?, ?)"},
		{&p.count, "INSERT INTO " + countsTable(gen) + " (company_id, n) VALUES (?, ?) ON CONFLICT (company_id) DO UPDATE SET n = n + excluded.n"},
	} {
		var err error
		if *s.dst, err = tx.PrepareContext(ctx, s.sql); err != nil {
			if strings.Contains(err.Error(), "no such table") {
				return fmt.Errorf("%w: customers generation %d", ErrNoGeneration, gen)
			}
			return err
		}
	}
	return nil
}

// update returns the statement that sets the columns of mask.
func (p *putStmts) update(ctx context.Context, mask uint32) (*sql.Stmt, error) {
	if st, ok := p.updates[mask]; ok {
		return st, nil
	}
	var set []string
	for i, col := range customerColumns {
		if mask&(1<<i) != 0 {
			set = append(set, col+" = ?")
		}
	}
	st, err := p.tx.PrepareContext(ctx, "UPDATE "+p.table+" SET "+strings.Join(set, ", ")+" WHERE seq = ?")
	if err != nil {
		return nil, err
	}
	p.updates[mask] = st
	return st, nil
}

func (p *putStmts) close() {
	for _, s := range []*sql.Stmt{p.find, p.insert, p.insertDoc, p.updateDoc, p.delTerm, p.addTerm, p.count} {
		if s != nil {
			_ = s.Close()
		}
	}
	for _, s := range p.updates {
		_ = s.Close()
	}
}

// stored holds the columns of a row as the store has them, scanned with
// the types putArgs gives them.
type stored struct {
	seq   int64
	vals  []any // pointers, for Scan
	strs  [numColumns]string
	ints  [numColumns]int64
	terms []byte
}

func newStored(args []any) *stored {
	s := &stored{vals: make([]any, 1, numColumns+2)}
	s.vals[0] = &s.seq
	for i, a := range args {
		switch a.(type) {
		case string:
			s.vals = append(s.vals, &s.strs[i])
		default:
			s.vals = append(s.vals, &s.ints[i])
		}
	}
	s.vals = append(s.vals, &s.terms)
	return s
}

// changed is the mask of columns whose value args changes.
func (s *stored) changed(args []any) uint32 {
	var mask uint32
	for i, a := range args {
		switch v := a.(type) {
		case string:
			if v != s.strs[i] {
				mask |= 1 << i
			}
		case int64:
			if v != s.ints[i] {
				mask |= 1 << i
			}
		}
	}
	return mask
}

// PutCustomers implements projections.Store. On success it sets the Seq of
// each row of rows to the one the store holds.
func (s *Store) PutCustomers(ctx context.Context, gen projections.Generation, checkpoint domain.Position, rows []projections.CustomerRow) error {
	if err := s.writable(); err != nil {
		return err
	}
	seqs := make([]int64, len(rows))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := setCheckpoint(ctx, tx, projections.CustomersProjection, gen, checkpoint); err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		var st putStmts
		defer st.close()
		if err := st.prepare(ctx, tx, gen); err != nil {
			return err
		}
		counts := map[string]int64{}
		var (
			args          = make([]any, 0, len(customerColumns)+1)
			setArgs       = make([]any, 0, len(customerColumns)+1)
			newTerms, old []term
			encoded       []byte
			doc           bytes.Buffer
			prev          *stored
		)
		enc := json.NewEncoder(&doc)
		for i, r := range rows {
			c := r.Customer
			if c == nil || c.ID == "" {
				return fmt.Errorf("row %d has no customer id", i)
			}
			doc.Reset()
			if err := enc.Encode(c); err != nil {
				return fmt.Errorf("customer %s: %w", c.ID, err)
			}
			newTerms = termsOf(r, newTerms)
			encoded = encodeTerms(encoded, newTerms)
			args = putArgs(args[:0], r)
			docBytes := bytes.TrimSuffix(doc.Bytes(), []byte("\n"))
			if prev == nil {
				prev = newStored(args)
			}

			var seq int64
			err := st.find.QueryRowContext(ctx, c.ID).Scan(prev.vals...)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				res, err := st.insert.ExecContext(ctx, append(append(setArgs[:0], c.ID), args...)...)
				if err != nil {
					return fmt.Errorf("customer %s: %w", c.ID, err)
				}
				if seq, err = res.LastInsertId(); err != nil {
					return fmt.Errorf("customer %s: %w", c.ID, err)
				}
				if _, err := st.insertDoc.ExecContext(ctx, seq, encoded, docBytes); err != nil {
					return fmt.Errorf("customer %s: %w", c.ID, err)
				}
				counts[c.CompanyID]++
				old = old[:0]
			case err != nil:
				return fmt.Errorf("customer %s: %w", c.ID, err)
			default:
				seq = prev.seq
				if mask := prev.changed(args); mask != 0 {
					upd, err := st.update(ctx, mask)
					if err != nil {
						return err
					}
					setArgs = setArgs[:0]
					for i, a := range args {
						if mask&(1<<i) != 0 {
							setArgs = append(setArgs, a)
						}
					}
					if _, err := upd.ExecContext(ctx, append(setArgs, seq)...); err != nil {
						return fmt.Errorf("customer %s: %w", c.ID, err)
					}
				}
				if _, err := st.updateDoc.ExecContext(ctx, encoded, docBytes, seq); err != nil {
					return fmt.Errorf("customer %s: %w", c.ID, err)
				}
				if oldCompany := prev.strs[colCompany]; oldCompany != c.CompanyID {
					counts[oldCompany]--
					counts[c.CompanyID]++
				}
				if old, err = decodeTerms(prev.terms, old); err != nil {
					return fmt.Errorf("customer %s: %w", c.ID, err)
				}
			}
			seqs[i] = seq
			if err := diffTerms(ctx, &st, seq, old, newTerms); err != nil {
				return fmt.Errorf("customer %s: %w", c.ID, err)
			}
		}
		for company, n := range counts {
			if n == 0 {
				continue
			}
			if _, err := st.count.ExecContext(ctx, company, n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite read model: put customers in generation %d: %w", gen, err)
	}
	for i := range rows {
		rows[i].Seq = seqs[i]
	}
	return nil
}

// diffTerms writes the difference between a customer's old and new terms,
// both sorted, so a replace that changes no term writes none.
func diffTerms(ctx context.Context, st *putStmts, seq int64, old, new []term) error {
	i, j := 0, 0
	for i < len(old) || j < len(new) {
		var c int
		switch {
		case i == len(old):
			c = 1
		case j == len(new):
			c = -1
		default:
			c = compareTerms(old[i], new[j])
		}
		switch {
		case c < 0:
			if _, err := st.delTerm.ExecContext(ctx, termFields[old[i].field].name, old[i].value, seq); err != nil {
				return err
			}
			i++
		case c > 0:
			if _, err := st.addTerm.ExecContext(ctx, termFields[new[j].field].name, new[j].value, seq); err != nil {
				return err
			}
			j++
		default:
			i++
			j++
		}
	}
	return nil
}

// putArgs are the values of customerColumns for a row.
func putArgs(args []any, r projections.CustomerRow) []any {
	c := r.Customer
	var updated int64
	if t := projections.LastStatusUpdate(c); !t.IsZero() {
		updated = t.UnixNano()
	}
	return append(args,
		c.CompanyID, c.Status, c.Nationality, c.Risk, c.VideoCallStatus, int64(c.VerificationLevel),
		r.VerificationStatus, r.State, projections.Country(c), c.CreatedByAgent, c.ReferralCode, c.BirthDate,
		c.CreatedAt.UnixNano(), updated, projections.NameSortKey(c), int64(c.Revision), r.AggregatedStatus)
}

// selectRows reads whole rows of a generation; a WHERE on c follows.
func selectRows(gen projections.Generation) string {
	return "SELECT c.seq, c.verification_status, c.state, c.aggregated_status, d.doc FROM " +
		customersTable(gen) + " AS c JOIN " + docsTable(gen) + " AS d ON d.seq = c.seq"
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

// loadChunk bounds the ids of one IN list, well under SQLite's limit on
// bound parameters.
const loadChunk = 500

// LoadCustomers implements projections.Store.
func (s *Store) LoadCustomers(ctx context.Context, gen projections.Generation, ids []string) (map[string]projections.CustomerRow, error) {
	out := make(map[string]projections.CustomerRow, len(ids))
	for chunk := range slices.Chunk(ids, loadChunk) {
		q := selectRows(gen) + " WHERE c.id IN (" + marks(len(chunk)) + ")"
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		if err := s.queryRows(ctx, s.rdb, q, args, func(r projections.CustomerRow) {
			out[r.Customer.ID] = r
		}); err != nil {
			if strings.Contains(err.Error(), "no such table") {
				err = fmt.Errorf("%w: customers generation %d", ErrNoGeneration, gen)
			}
			return nil, fmt.Errorf("sqlite read model: load customers of generation %d: %w", gen, err)
		}
	}
	return out, nil
}

func (s *Store) queryRows(ctx context.Context, db querier, q string, args []any, fn func(projections.CustomerRow)) error {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRow(rows)
		if err != nil {
			return err
		}
		fn(r)
	}
	return rows.Err()
}

// Customer implements projections.Store.
func (s *Store) Customer(ctx context.Context, id string) (projections.CustomerRow, error) {
	var r projections.CustomerRow
	err := s.withActive(ctx, projections.CustomersProjection, func(db querier, gen projections.Generation) error {
		if gen == 0 {
			return projections.ErrNotFound
		}
		var err error
		r, err = scanRow(db.QueryRowContext(ctx, selectRows(gen)+" WHERE c.id = ?", id))
		if errors.Is(err, sql.ErrNoRows) {
			return projections.ErrNotFound
		}
		return err
	})
	if err != nil {
		return r, fmt.Errorf("sqlite read model: customer %s: %w", id, err)
	}
	return r, nil
}

func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// where builds a WHERE clause with placeholders only.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) in(col string, vals []string) {
	if len(vals) == 0 {
		return
	}
	if len(vals) == 1 {
		w.add(col+" = ?", vals[0])
		return
	}
	w.conds = append(w.conds, col+" IN ("+marks(len(vals))+")")
	for _, v := range vals {
		w.args = append(w.args, v)
	}
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// customerFilter translates q's filters (projections.ListQuery.Matches).
// filter is a list query's WHERE clause and what is known of its count.
type filter struct {
	where
	// companyOnly: the only filters are on the company, which the counts
	// table answers.
	companyOnly bool
	// termCount, when set, counts the matches on the terms table alone,
	// without visiting the customers: the query has one filter and it is
	// on terms.
	termCount     string
	termCountArgs []any
}

func customerFilter(q projections.ListQuery, gen projections.Generation) (f filter) {
	w := &f.where
	terms := termsTable(gen)
	var termCount string
	var termArgs []any
	termCond := func(cond string, args ...any) {
		termCount = "SELECT count(DISTINCT seq) FROM " + terms + " WHERE " + cond
		termArgs = args
	}
	if q.ScopeCompany != "" {
		w.add("company_id = ?", q.ScopeCompany)
	}
	w.in("company_id", q.Companies)
	before := len(w.conds)
	for _, word := range projections.SearchWords(q.Q) {
		// A range, not a prefix function, so the term index serves it. No
		// UTF-8 byte is 0xff, so every string starting with word sorts
		// before word+"\xff" and no other does.
		w.add("seq IN (SELECT seq FROM "+terms+" WHERE field = 'q' AND value >= ? AND value < ?)", word, word+"\xff")
		termCond("field = 'q' AND value >= ? AND value < ?", word, word+"\xff")
	}
	w.in("status", q.Statuses)
	w.in("nationality", q.Nationalities)
	w.in("risk", q.Risks)
	w.in("video_call_status", q.VideoCallStatuses)
	w.in("verification_status", q.VerificationStatuses)
	w.in("state", q.States)
	w.in("country", q.Countries)
	w.in("created_by_agent", q.Agents)
	w.in("referral_code", q.ReferralCodes)
	if len(q.VerificationLevels) > 0 {
		w.conds = append(w.conds, "verification_level IN ("+marks(len(q.VerificationLevels))+")")
		for _, l := range q.VerificationLevels {
			w.args = append(w.args, int64(l))
		}
	}
	if !q.Created.From.IsZero() {
		w.add("created_at >= ?", q.Created.From.UnixNano())
	}
	if !q.Created.To.IsZero() {
		w.add("created_at < ?", q.Created.To.UnixNano())
	}
	if !q.Updated.IsZero() {
		w.add("last_status_update > 0")
		if !q.Updated.From.IsZero() {
			w.add("last_status_update >= ?", q.Updated.From.UnixNano())
		}
		if !q.Updated.To.IsZero() {
			w.add("last_status_update < ?", q.Updated.To.UnixNano())
		}
	}
	termIn := func(field string, vals []string) {
		if len(vals) == 0 {
			return
		}
		args := append(make([]any, 0, len(vals)+1), field)
		for _, v := range vals {
			args = append(args, v)
		}
		cond := "field = ? AND value IN (" + marks(len(vals)) + ")"
		// A probe per candidate row, not a list of every match built
		// first: these values are common, so the candidates usually come
		// from a sort index and the list would be long.
		w.add("EXISTS (SELECT 1 FROM "+terms+" WHERE "+cond+" AND seq = "+customersTable(gen)+".seq)", args...)
		termCond(cond, args...)
	}
	termIn("tag", q.Tags)
	termIn("access_role", q.AccessRoles)
	termIn("access_group", q.AccessGroups)
	termIn("doc_type", q.DocumentTypes)
	if !q.Expiry.IsZero() {
		cond, args := "field = 'expiry'", []any{}
		if q.Expiry.From != "" {
			cond, args = cond+" AND value >= ?", append(args, q.Expiry.From)
		}
		if q.Expiry.To != "" {
			cond, args = cond+" AND value <= ?", append(args, q.Expiry.To)
		}
		w.add("seq IN (SELECT seq FROM "+terms+" WHERE "+cond+")", args...)
		termCond(cond, args...)
	}
	if q.AgeMin != nil || q.AgeMax != nil {
		after, onOrBefore := q.BirthBounds()
		w.add("birth_date <> ''")
		if after != "" {
			w.add("birth_date > ?", after)
		}
		if onOrBefore != "" {
			w.add("birth_date <= ?", onOrBefore)
		}
	}
	f.companyOnly = len(w.conds) == before
	if before == 0 && len(w.conds) == 1 && termCount != "" {
		f.termCount, f.termCountArgs = termCount, termArgs
	}
	return f
}

func sortColumn(k projections.SortKey) string {
	switch k {
	case projections.SortName:
		return "name_sort"
	case projections.SortLastStatusUpdate:
		return "last_status_update"
	default:
		return "created_at"
	}
}

// ListCustomers implements projections.Store.
func (s *Store) ListCustomers(ctx context.Context, q projections.ListQuery) (projections.ListPage, error) {
	page := projections.ListPage{Page: q.Page, PerPage: q.PerPage}
	err := s.withActive(ctx, projections.CustomersProjection, func(db querier, gen projections.Generation) error {
		if gen == 0 {
			return nil
		}
		f := customerFilter(q, gen)
		w := f.where
		dir := ""
		if q.Desc {
			dir = " DESC"
		}
		col := sortColumn(q.Sort)
		// The page's rows first, then their documents: a sort keeps every
		// column of every match until the end, so it must not hold them.
		sel := "SELECT seq, verification_status, state, aggregated_status FROM " + customersTable(gen) + w.String() +
			" ORDER BY " + col + dir + ", seq" + dir + " LIMIT ? OFFSET ?"
		args := append(slices.Clip(w.args), int64(q.PerPage), int64(q.Offset()))
		if err := s.readPage(ctx, db, gen, sel, args, &page); err != nil {
			return err
		}
		// The page tells the total when it is not full and not empty: no
		// count needed.
		if len(page.Rows) > 0 && len(page.Rows) < q.PerPage {
			page.Total = q.Offset() + len(page.Rows)
			return nil
		}
		var err error
		page.Total, err = s.countCustomers(ctx, db, gen, q, f)
		return err
	})
	if err != nil {
		return page, fmt.Errorf("sqlite read model: list customers: %w", err)
	}
	return page, nil
}

func (s *Store) readPage(ctx context.Context, db querier, gen projections.Generation, sel string, args []any, page *projections.ListPage) error {
	rows, err := db.QueryContext(ctx, sel, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	index := map[int64]int{}
	var seqs []any
	for rows.Next() {
		var r projections.CustomerRow
		if err := rows.Scan(&r.Seq, &r.VerificationStatus, &r.State, &r.AggregatedStatus); err != nil {
			return err
		}
		index[r.Seq] = len(page.Rows)
		seqs = append(seqs, r.Seq)
		page.Rows = append(page.Rows, r)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(seqs) == 0 {
		return nil
	}
	docs, err := db.QueryContext(ctx, "SELECT seq, doc FROM "+docsTable(gen)+" WHERE seq IN ("+marks(len(seqs))+")", seqs...)
	if err != nil {
		return err
	}
	defer docs.Close()
	found := 0
	for docs.Next() {
		var seq int64
		var doc []byte
		if err := docs.Scan(&seq, &doc); err != nil {
			return err
		}
		c := new(domain.Customer)
		if err := json.Unmarshal(doc, c); err != nil {
			return fmt.Errorf("row %d: %w", seq, err)
		}
		page.Rows[index[seq]].Customer = c
		found++
	}
	if err := docs.Err(); err != nil {
		return err
	}
	if found != len(seqs) {
		return fmt.Errorf("%d of %d rows have no document", len(seqs)-found, len(seqs))
	}
	return nil
}

func (s *Store) countCustomers(ctx context.Context, db querier, gen projections.Generation, q projections.ListQuery, f filter) (int, error) {
	var n int64
	if f.termCount != "" {
		err := db.QueryRowContext(ctx, f.termCount, f.termCountArgs...).Scan(&n)
		return int(n), err
	}
	w := f.where
	if f.companyOnly {
		var c where
		companies := q.Companies
		if q.ScopeCompany != "" {
			if len(companies) > 0 && !slices.Contains(companies, q.ScopeCompany) {
				return 0, nil
			}
			companies = []string{q.ScopeCompany}
		}
		c.in("company_id", companies)
		err := db.QueryRowContext(ctx, "SELECT coalesce(sum(n), 0) FROM "+countsTable(gen)+c.String(), c.args...).Scan(&n)
		return int(n), err
	}
	err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+customersTable(gen)+w.String(), w.args...).Scan(&n)
	return int(n), err
}
