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
// field's tag in the compact copy of a customer's terms kept on its row;
// column, when set, is the column of customers_gN that holds the field's
// values as a set (valueSet), and such fields are counted in
// customer_values_gN.
var termFields = [...]struct {
	code   byte
	name   string
	column string
}{
	{'q', "q", ""},
	{'t', "tag", "tags"},
	{'r', "access_role", "access_roles"},
	{'g', "access_group", "access_groups"},
	{'d', "doc_type", "doc_types"},
	{'e', "expiry", ""},
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

// setSep ends each value of a set column; it leads too, so that every value
// is found as sep+value+sep. setEsc escapes the separator and itself inside
// values: the escapes and the other bytes form a prefix-free code, so a
// value never matches across the boundary of another.
const (
	setSep = "\x1f"
	setEsc = "\x1e"
)

var setEscaper = strings.NewReplacer(setEsc, setEsc+setEsc, setSep, setEsc+"\x1d")

// valueSet is how a set column holds values: "" for none.
func valueSet(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	var b strings.Builder
	for _, v := range vals {
		b.WriteString(setSep)
		b.WriteString(setEscaper.Replace(v))
	}
	b.WriteString(setSep)
	return b.String()
}

// setMember is what a set column holding v contains.
func setMember(v string) string { return setSep + setEscaper.Replace(v) + setSep }

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

func valuesTable(gen projections.Generation) string {
	return "customer_values_g" + strconv.FormatInt(int64(gen), 10)
}

// The columns of customers_gN a put writes, in the order of putArgs.
var customerColumns = []string{"company_id", "status", "nationality", "risk", "video_call_status",
	"verification_level", "verification_status", "state", "country", "created_by_agent", "referral_code",
	"birth_date", "created_at", "last_status_update", "name_sort", "revision", "aggregated_status",
	"tags", "access_roles", "access_groups", "doc_types", "search", "expiries"}

const (
	colCompany = 0
	colCreated = 12
	// Columns 1 to colLastValue are the single-valued filters that compare
	// a value; customer_values_gN counts them.
	colLastValue = 10
	numColumns   = 23
)

// putStmts are the statements of one PutCustomers transaction.
type putStmts struct {
	find, insert, insertDoc, updateDoc, delTerm, addTerm, setPrev, count *sql.Stmt
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
		{&p.delTerm, "DELETE FROM " + t + " WHERE field = ? AND value = ? AND created_at = ? AND seq = ?"},
		{&p.addTerm, "INSERT OR IGNORE INTO " + t + " (field, value, created_at, seq, company_id, prev) VALUES (?, ?, ?, ?, ?, ?)"},
		{&p.setPrev, "UPDATE " + t + " SET prev = ? WHERE field = ? AND value = ? AND created_at = ? AND seq = ?"},
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
	for _, s := range []*sql.Stmt{p.find, p.insert, p.insertDoc, p.updateDoc, p.delTerm, p.addTerm, p.setPrev, p.count} {
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

// value is the stored value of column i as customer_values_gN has it.
func (s *stored) value(i int, args []any) string {
	if _, ok := args[i].(string); ok {
		return s.strs[i]
	}
	return strconv.FormatInt(s.ints[i], 10)
}

// valueKey is a row of customer_values_gN.
type valueKey struct{ field, value, company string }

// valueCounts are changes to customer_values_gN; most of those of a
// replace cancel out, and only the others are written.
type valueCounts map[valueKey]int64

// column counts the value of column i (1..colLastValue).
func (v valueCounts) column(i int, value, company string, delta int64) {
	v[valueKey{customerColumns[i], value, company}] += delta
}

// term counts a term of a counted field; nil counts nothing.
func (v valueCounts) term(t term, company string, delta int64) {
	if v != nil && termFields[t.field].column != "" {
		v[valueKey{termFields[t.field].name, t.value, company}] += delta
	}
}

// valuesChunk bounds the rows of one INSERT of values: 4 parameters each,
// well under SQLite's limit.
const valuesChunk = 250

// write adds the changes to the table, several rows per statement.
func (v valueCounts) write(ctx context.Context, tx *sql.Tx, gen projections.Generation) error {
	args := make([]any, 0, 4*valuesChunk)
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		rows := strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?), ", len(args)/4), ", ")
		_, err := tx.ExecContext(ctx, "INSERT INTO "+valuesTable(gen)+" (field, value, company_id, n) VALUES "+rows+
			" ON CONFLICT (field, value, company_id) DO UPDATE SET n = n + excluded.n", args...)
		args = args[:0]
		return err
	}
	for k, n := range v {
		if n == 0 {
			continue
		}
		args = append(args, k.field, k.value, k.company, n)
		if len(args) == cap(args) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// argValue is column i of putArgs as customer_values_gN has it.
func argValue(args []any, i int) string {
	switch v := args[i].(type) {
	case string:
		return v
	case int64:
		return strconv.FormatInt(v, 10)
	}
	panic(fmt.Sprintf("column %s has a value of type %T", customerColumns[i], args[i]))
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
		if err := s.setCheckpoint(ctx, tx, projections.CustomersProjection, gen, checkpoint); err != nil {
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
		values := valueCounts{}
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
			args = putArgs(args[:0], r, newTerms)
			docBytes := bytes.TrimSuffix(doc.Bytes(), []byte("\n"))
			if prev == nil {
				prev = newStored(args)
			}

			var (
				seq int64
				// Under what the stored terms rows are; none for a new
				// customer.
				was termKey
			)
			// Counts the terms diffTerms adds and deletes, unless the
			// customer moved company and they are counted above.
			termValues := values
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
				for i := 1; i <= colLastValue; i++ {
					values.column(i, argValue(args, i), c.CompanyID, 1)
				}
			case err != nil:
				return fmt.Errorf("customer %s: %w", c.ID, err)
			default:
				seq = prev.seq
				mask := prev.changed(args)
				if mask != 0 {
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
				if old, err = decodeTerms(prev.terms, old); err != nil {
					return fmt.Errorf("customer %s: %w", c.ID, err)
				}
				was = termKey{created: prev.ints[colCreated], company: prev.strs[colCompany]}
				termValues = values
				if oldCompany := prev.strs[colCompany]; oldCompany != c.CompanyID {
					counts[oldCompany]--
					counts[c.CompanyID]++
					// Every value moves to the new company.
					mask = 1<<(colLastValue+1) - 1
					for _, t := range old {
						values.term(t, oldCompany, -1)
					}
					for _, t := range newTerms {
						values.term(t, c.CompanyID, 1)
					}
					termValues = nil
				}
				for i := 1; i <= colLastValue; i++ {
					if mask&(1<<i) != 0 {
						values.column(i, prev.value(i, args), prev.strs[colCompany], -1)
						values.column(i, argValue(args, i), c.CompanyID, 1)
					}
				}
			}
			seqs[i] = seq
			now := termKey{created: args[colCreated].(int64), company: c.CompanyID}
			if err := diffTerms(ctx, &st, seq, was, now, old, newTerms, termValues); err != nil {
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
		return values.write(ctx, tx, gen)
	})
	if err != nil {
		return fmt.Errorf("sqlite read model: put customers in generation %d: %w", gen, err)
	}
	for i := range rows {
		rows[i].Seq = seqs[i]
	}
	return nil
}

// termKey is what a customer's terms rows repeat of it (see
// customers.up.sql).
type termKey struct {
	created int64
	company string
}

// diffTerms writes the difference between a customer's old terms, stored
// under was, and its new ones, to be stored under now, both sorted, so a
// replace that changes no term writes none; it counts the terms it adds and
// deletes in values under now's company. A customer whose key changed (the
// domain never moves one, but a put may) has every row rewritten.
func diffTerms(ctx context.Context, st *putStmts, seq int64, was, now termKey, old, new []term, values valueCounts) error {
	del := func(i int) error {
		_, err := st.delTerm.ExecContext(ctx, termFields[old[i].field].name, old[i].value, was.created, seq)
		values.term(old[i], now.company, -1)
		return err
	}
	add := func(j int) error {
		_, err := st.addTerm.ExecContext(ctx, termFields[new[j].field].name, new[j].value, now.created, seq, now.company, prevTerm(new, j))
		values.term(new[j], now.company, 1)
		return err
	}
	if was != now {
		for i := range old {
			if err := del(i); err != nil {
				return err
			}
		}
		for j := range new {
			if err := add(j); err != nil {
				return err
			}
		}
		return nil
	}
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
			if err := del(i); err != nil {
				return err
			}
			i++
		case c > 0:
			if err := add(j); err != nil {
				return err
			}
			j++
		default:
			if p := prevTerm(new, j); p != prevTerm(old, i) {
				if _, err := st.setPrev.ExecContext(ctx, p, termFields[new[j].field].name, new[j].value, now.created, seq); err != nil {
					return err
				}
			}
			i++
			j++
		}
	}
	return nil
}

// prevTerm is the prev column of ts[i] (see customers.up.sql): the value
// before it in the same field, for the fields matched by a range of values;
// nil (NULL) for the first and for the other fields.
func prevTerm(ts []term, i int) any {
	if (ts[i].field != fieldQ && ts[i].field != fieldExpiry) || i == 0 || ts[i-1].field != ts[i].field {
		return nil
	}
	return ts[i-1].value
}

// putArgs are the values of customerColumns for a row whose terms are ts.
func putArgs(args []any, r projections.CustomerRow, ts []term) []any {
	c := r.Customer
	var updated int64
	if t := projections.LastStatusUpdate(c); !t.IsZero() {
		updated = t.UnixNano()
	}
	return append(args,
		c.CompanyID, c.Status, c.Nationality, c.Risk, c.VideoCallStatus, int64(c.VerificationLevel),
		r.VerificationStatus, r.State, projections.Country(c), c.CreatedByAgent, c.ReferralCode, c.BirthDate,
		c.CreatedAt.UnixNano(), updated, projections.NameSortKey(c), int64(c.Revision), r.AggregatedStatus,
		termSet(ts, fieldTag), termSet(ts, fieldRole), termSet(ts, fieldGroup), termSet(ts, fieldDocType), termSet(ts, fieldQ),
		expiriesOf(ts))
}

// The expiries column holds up to expirySlots dates of dateLen ASCII bytes
// side by side: a range of dates has no test that SQL's string functions
// can make on a list, but it has one on each slot. A customer with more
// dates, or with one of another form, has "*" there and is checked against
// the terms table instead.
const (
	expirySlots = 4
	dateLen     = 10
)

// expiriesOf is the expiries column of sorted terms.
func expiriesOf(ts []term) string {
	var b strings.Builder
	n := 0
	for _, t := range ts {
		if t.field != fieldExpiry {
			continue
		}
		if n == expirySlots || len(t.value) != dateLen || strings.IndexFunc(t.value, func(r rune) bool { return r >= 0x80 }) >= 0 {
			return "*"
		}
		b.WriteString(t.value)
		n++
	}
	return b.String()
}

// termSet is the set column of one field of sorted terms.
func termSet(ts []term, field int) string {
	var vals []string
	for _, t := range ts {
		if t.field == field {
			vals = append(vals, t.value)
		}
	}
	return valueSet(vals)
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

// ListCustomers implements projections.Store. See plan.go for how.
func (s *Store) ListCustomers(ctx context.Context, q projections.ListQuery) (projections.ListPage, error) {
	page := projections.ListPage{Page: q.Page, PerPage: q.PerPage}
	err := s.withActive(ctx, projections.CustomersProjection, func(db querier, gen projections.Generation) error {
		if gen == 0 {
			return nil
		}
		p := newListPlan(q, gen)
		if p.empty {
			return nil
		}
		if err := p.estimate(ctx, db); err != nil {
			return err
		}
		total, ok := p.exactTotal()
		if !ok {
			query, args := p.countSQL()
			var n int64
			if err := db.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
				return err
			}
			total = float64(n)
			p.learn(total)
		}
		page.Total = int(total)
		if q.Offset() >= page.Total {
			return nil
		}
		query, args := p.pageSQL(q, total)
		return s.readPage(ctx, db, gen, query, args, &page)
	})
	if err != nil {
		return page, fmt.Errorf("sqlite read model: list customers: %w", err)
	}
	return page, nil
}

// readPage reads the seqs of a page, then their rows: the page's query
// reads an index alone, and only the rows it returns are looked up.
func (s *Store) readPage(ctx context.Context, db querier, gen projections.Generation, sel string, args []any, page *projections.ListPage) error {
	rows, err := db.QueryContext(ctx, sel, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	index := map[int64]int{}
	var seqs []any
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			return err
		}
		index[seq] = len(seqs)
		seqs = append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(seqs) == 0 {
		return nil
	}
	page.Rows = make([]projections.CustomerRow, len(seqs))
	found := 0
	err = s.queryRows(ctx, db, selectRows(gen)+" WHERE c.seq IN ("+marks(len(seqs))+")", seqs, func(r projections.CustomerRow) {
		page.Rows[index[r.Seq]] = r
		found++
	})
	if err != nil {
		return err
	}
	if found != len(seqs) {
		return fmt.Errorf("%d of %d rows of the page are gone", len(seqs)-found, len(seqs))
	}
	return nil
}
