package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// registeredType is the event that ties a customer to its company.
const registeredType = "CustomerRegistered"

type auditTables struct {
	audit, companies, counts string
}

func auditTablesOf(gen projections.Generation) auditTables {
	n := strconv.FormatInt(int64(gen), 10)
	return auditTables{audit: "read_audit_g" + n, companies: "read_audit_companies_g" + n, counts: "read_audit_counts_g" + n}
}

// AppendAudit implements projections.Store. It fails with ErrFenced when
// the generation's checkpoint is not where this Store last saw it.
func (s *Store) AppendAudit(ctx context.Context, gen projections.Generation, checkpoint domain.Position, entries []projections.AuditEntry) error {
	n := len(entries)
	// Columns of the entries, for unnest.
	commits, prepares, occurred := make([]int64, n), make([]int64, n), make([]int64, n)
	eventIDs, customers, companies := make([]string, n), make([]string, n), make([]string, n)
	types, actors, docs := make([]string, n), make([]string, n), make([][]byte, n)
	registered := map[string]string{}
	var registeredOrder []string
	counts := map[string]int64{}
	for i, e := range entries {
		doc, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("postgres read model: append audit to generation %d: event %s: %w", gen, e.EventID, err)
		}
		commits[i], prepares[i], occurred[i] = int64(e.Position.Commit), int64(e.Position.Prepare), e.OccurredAt.UnixNano()
		eventIDs[i], customers[i], companies[i], types[i], actors[i] = e.EventID, e.CustomerID, e.CompanyID, e.Type, e.Actor.ID
		docs[i] = doc
		counts[e.CompanyID]++
		if e.Type == registeredType {
			if _, seen := registered[e.CustomerID]; !seen {
				registeredOrder = append(registeredOrder, e.CustomerID)
			}
			registered[e.CustomerID] = e.CompanyID
		}
	}
	// One row per customer in a statement: the last registration wins.
	regCustomers, regCompanies := make([]string, 0, len(registered)), make([]string, 0, len(registered))
	for _, id := range registeredOrder {
		regCustomers, regCompanies = append(regCustomers, id), append(regCompanies, registered[id])
	}
	countCompanies, countDeltas := make([]string, 0, len(counts)), make([]int64, 0, len(counts))
	for company, k := range counts {
		countCompanies, countDeltas = append(countCompanies, company), append(countDeltas, k)
	}

	t := auditTablesOf(gen)
	err := s.write(ctx, projections.AuditProjection, gen, checkpoint, func(b *pgx.Batch) {
		if n == 0 {
			return
		}
		b.Queue(`INSERT INTO `+t.audit+` (position_commit, position_prepare, event_id, customer_id, company_id, type,
				actor_id, occurred_at, doc)
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
				$8::bigint[], $9::bytea[])`,
			commits, prepares, eventIDs, customers, companies, types, actors, occurred, docs)
		if len(regCustomers) > 0 {
			b.Queue(`INSERT INTO `+t.companies+` (customer_id, company_id) SELECT * FROM unnest($1::text[], $2::text[])
				ON CONFLICT (customer_id) DO UPDATE SET company_id = excluded.company_id`, regCustomers, regCompanies)
		}
		b.Queue(`INSERT INTO `+t.counts+` AS k (company_id, n) SELECT * FROM unnest($1::text[], $2::bigint[])
			ON CONFLICT (company_id) DO UPDATE SET n = k.n + excluded.n`, countCompanies, countDeltas)
	})
	if err != nil {
		if isUndefinedTable(err) {
			err = errors.Join(noGeneration(projections.AuditProjection, gen), err)
		}
		return fmt.Errorf("postgres read model: append audit to generation %d: %w", gen, err)
	}
	return nil
}

// AuditCompanies implements projections.Store.
func (s *Store) AuditCompanies(ctx context.Context, gen projections.Generation, customerIDs []string) (map[string]string, error) {
	out := make(map[string]string, len(customerIDs))
	if err := s.usable(); err != nil {
		return nil, err
	}
	if len(customerIDs) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, "SELECT customer_id, company_id FROM "+auditTablesOf(gen).companies+
		" WHERE customer_id = ANY($1)", customerIDs)
	if err == nil {
		defer rows.Close()
		for rows.Next() {
			var id, company string
			if err = rows.Scan(&id, &company); err != nil {
				break
			}
			out[id] = company
		}
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		if isUndefinedTable(err) {
			err = errors.Join(noGeneration(projections.AuditProjection, gen), err)
		}
		return nil, fmt.Errorf("postgres read model: audit companies in generation %d: %w", gen, err)
	}
	return out, nil
}

// auditSQL is the page query and the count query of an audit query.
func auditSQL(q projections.AuditQuery, gen projections.Generation) (page string, pageArgs []any, count string, countArgs []any) {
	t := auditTablesOf(gen)
	var w where
	if q.ScopeCompany != "" {
		w.add("company_id = " + w.arg(q.ScopeCompany))
	}
	w.anyOf("company_id", q.Companies)
	companyOnly := len(w.conds)
	w.anyOf("customer_id", q.Customers)
	w.anyOf("actor_id", q.Actors)
	w.anyOf("type", q.Types)
	if !q.Time.From.IsZero() {
		w.add("occurred_at >= " + w.arg(q.Time.From.UnixNano()))
	}
	if !q.Time.To.IsZero() {
		w.add("occurred_at < " + w.arg(q.Time.To.UnixNano()))
	}
	if len(w.conds) == companyOnly {
		count, countArgs = companyCount(t.counts, q.ScopeCompany, q.Companies)
	} else {
		count, countArgs = "SELECT count(*) FROM "+t.audit+w.String(), w.args
	}
	cond := w.String()
	offset := int64(q.Page-1) * int64(q.PerPage)
	limit, off := w.arg(int64(q.PerPage)), w.arg(offset)
	page = "SELECT doc FROM " + t.audit + cond +
		" ORDER BY position_commit DESC, position_prepare DESC LIMIT " + limit + " OFFSET " + off
	return page, w.args, count, countArgs
}

// Audit implements projections.Store.
func (s *Store) Audit(ctx context.Context, q projections.AuditQuery) (projections.AuditPage, error) {
	var page projections.AuditPage
	err := s.withActive(ctx, projections.AuditProjection, func(gen projections.Generation) error {
		page = projections.AuditPage{Page: q.Page, PerPage: q.PerPage}
		if gen == 0 {
			return nil
		}
		pageSQL, pageArgs, countSQL, countArgs := auditSQL(q, gen)
		b := &pgx.Batch{}
		queueCustomPlans(b)
		b.Queue(pageSQL, pageArgs...).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var doc []byte
				if err := rows.Scan(&doc); err != nil {
					return err
				}
				var e projections.AuditEntry
				if err := json.Unmarshal(doc, &e); err != nil {
					return err
				}
				page.Entries = append(page.Entries, e)
			}
			return rows.Err()
		})
		queueTotal(b, countSQL, countArgs, &page.Total)
		return s.pool.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return projections.AuditPage{}, fmt.Errorf("postgres read model: audit: %w", err)
	}
	return page, nil
}
