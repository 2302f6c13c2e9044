package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kycengine/kyc/domain"
	"github.com/kycengine/kyc/projections"
)

// registeredType is the event that ties a customer to its company.
const registeredType = "CustomerRegistered"

func auditTable(gen projections.Generation) string {
	return "audit_g" + strconv.FormatInt(int64(gen), 10)
}

func auditCompaniesTable(gen projections.Generation) string {
	return "audit_companies_g" + strconv.FormatInt(int64(gen), 10)
}

func auditCountsTable(gen projections.Generation) string {
	return "audit_counts_g" + strconv.FormatInt(int64(gen), 10)
}

// AppendAudit implements projections.Store.
func (s *Store) AppendAudit(ctx context.Context, gen projections.Generation, checkpoint domain.Position, entries []projections.AuditEntry) error {
	if err := s.writable(); err != nil {
		return err
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.setCheckpoint(ctx, tx, projections.AuditProjection, gen, checkpoint); err != nil {
			return err
		}
		if len(entries) == 0 {
			return nil
		}
		insert, err := tx.PrepareContext(ctx, "INSERT INTO "+auditTable(gen)+` (position_commit, position_prepare,
			event_id, customer_id, company_id, revision, type, actor_id, occurred_at, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			if strings.Contains(err.Error(), "no such table") {
				return fmt.Errorf("%w: audit generation %d", ErrNoGeneration, gen)
			}
			return err
		}
		defer insert.Close()
		counts := map[string]int64{}
		for _, e := range entries {
			doc, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("event %s: %w", e.EventID, err)
			}
			if _, err := insert.ExecContext(ctx, int64(e.Position.Commit), int64(e.Position.Prepare), e.EventID,
				e.CustomerID, e.CompanyID, int64(e.Revision), e.Type, e.Actor.ID, e.OccurredAt.UnixNano(), doc); err != nil {
				return fmt.Errorf("event %s: %w", e.EventID, err)
			}
			counts[e.CompanyID]++
			if e.Type == registeredType {
				if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO "+auditCompaniesTable(gen)+
					" (customer_id, company_id) VALUES (?, ?)", e.CustomerID, e.CompanyID); err != nil {
					return fmt.Errorf("event %s: %w", e.EventID, err)
				}
			}
		}
		for company, n := range counts {
			if _, err := tx.ExecContext(ctx, "INSERT INTO "+auditCountsTable(gen)+` (company_id, n) VALUES (?, ?)
				ON CONFLICT (company_id) DO UPDATE SET n = n + excluded.n`, company, n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite read model: append audit to generation %d: %w", gen, err)
	}
	return nil
}

// AuditCompanies implements projections.Store.
func (s *Store) AuditCompanies(ctx context.Context, gen projections.Generation, customerIDs []string) (map[string]string, error) {
	out := make(map[string]string, len(customerIDs))
	for chunk := range slices.Chunk(customerIDs, loadChunk) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		err := func() error {
			rows, err := s.rdb.QueryContext(ctx, "SELECT customer_id, company_id FROM "+auditCompaniesTable(gen)+
				" WHERE customer_id IN ("+marks(len(chunk))+")", args...)
			if err != nil {
				if strings.Contains(err.Error(), "no such table") {
					return fmt.Errorf("%w: audit generation %d", ErrNoGeneration, gen)
				}
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id, company string
				if err := rows.Scan(&id, &company); err != nil {
					return err
				}
				out[id] = company
			}
			return rows.Err()
		}()
		if err != nil {
			return nil, fmt.Errorf("sqlite read model: audit companies in generation %d: %w", gen, err)
		}
	}
	return out, nil
}

// Audit implements projections.Store.
func (s *Store) Audit(ctx context.Context, q projections.AuditQuery) (projections.AuditPage, error) {
	page := projections.AuditPage{Page: q.Page, PerPage: q.PerPage}
	err := s.withActive(ctx, projections.AuditProjection, func(db querier, gen projections.Generation) error {
		if gen == 0 {
			return nil
		}
		var w where
		if q.ScopeCompany != "" {
			w.add("company_id = ?", q.ScopeCompany)
		}
		w.in("company_id", q.Companies)
		companyConds := len(w.conds)
		w.in("customer_id", q.Customers)
		w.in("actor_id", q.Actors)
		w.in("type", q.Types)
		if !q.Time.From.IsZero() {
			w.add("occurred_at >= ?", q.Time.From.UnixNano())
		}
		if !q.Time.To.IsZero() {
			w.add("occurred_at < ?", q.Time.To.UnixNano())
		}
		offset := (q.Page - 1) * q.PerPage
		rows, err := db.QueryContext(ctx, "SELECT doc FROM "+auditTable(gen)+w.String()+
			" ORDER BY position_commit DESC, position_prepare DESC LIMIT ? OFFSET ?",
			append(slices.Clip(w.args), int64(q.PerPage), int64(offset))...)
		if err != nil {
			return err
		}
		defer rows.Close()
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
		if err := rows.Err(); err != nil {
			return err
		}
		if len(page.Entries) > 0 && len(page.Entries) < q.PerPage {
			page.Total = offset + len(page.Entries)
			return nil
		}
		var n int64
		if len(w.conds) == companyConds {
			companies := q.Companies
			if q.ScopeCompany != "" {
				if len(companies) > 0 && !slices.Contains(companies, q.ScopeCompany) {
					return nil
				}
				companies = []string{q.ScopeCompany}
			}
			var c where
			c.in("company_id", companies)
			err = db.QueryRowContext(ctx, "SELECT coalesce(sum(n), 0) FROM "+auditCountsTable(gen)+c.String(), c.args...).Scan(&n)
		} else {
			err = db.QueryRowContext(ctx, "SELECT count(*) FROM "+auditTable(gen)+w.String(), w.args...).Scan(&n)
		}
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		page.Total = int(n)
		return nil
	})
	if err != nil {
		return page, fmt.Errorf("sqlite read model: audit: %w", err)
	}
	return page, nil
}
