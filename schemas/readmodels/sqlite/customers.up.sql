-- Tables of one generation of the customers projection. {gen} is replaced
-- by the generation number. The store creates the tables with the
-- generation and each one-line CREATE INDEX statement when it activates the
-- generation: a rebuild fills bare tables and sorts every index once, at the
-- end, which is several times faster than keeping them up to date row by row.

-- One row per customer, with the columns filters and sorts use. seq is
-- assigned on first insert and kept on replace; it breaks sort ties so pages
-- are stable. Times are unix nanoseconds (last_status_update 0 = never),
-- birth_date an ISO date or ''. The document is in customer_docs_g{gen}: kept
-- out of here, rows stay narrow, so the many rows a filter or a count visits
-- share few pages.
CREATE TABLE customers_g{gen} (
    seq                 INTEGER PRIMARY KEY,
    id                  TEXT    NOT NULL UNIQUE,
    company_id          TEXT    NOT NULL,
    status              TEXT    NOT NULL,
    nationality         TEXT    NOT NULL,
    risk                TEXT    NOT NULL,
    video_call_status   TEXT    NOT NULL,
    verification_level  INTEGER NOT NULL,
    verification_status TEXT    NOT NULL,
    state               TEXT    NOT NULL,
    country             TEXT    NOT NULL,
    created_by_agent    TEXT    NOT NULL,
    referral_code       TEXT    NOT NULL,
    birth_date          TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    last_status_update  INTEGER NOT NULL,
    name_sort           TEXT    NOT NULL,
    revision            INTEGER NOT NULL,
    aggregated_status   TEXT    NOT NULL
) STRICT;

-- The customer as JSON (domain.Customer), and its rows of
-- customer_terms_g{gen} in a compact encoding, so that a replace rewrites
-- only the terms that changed.
CREATE TABLE customer_docs_g{gen} (
    seq   INTEGER PRIMARY KEY,
    terms BLOB NOT NULL,
    doc   BLOB NOT NULL
) STRICT;

-- Sorts: each key alone and after company_id, since every caller but a
-- superuser is scoped to one company.
CREATE INDEX customers_g{gen}_created ON customers_g{gen} (created_at, seq);
CREATE INDEX customers_g{gen}_company_created ON customers_g{gen} (company_id, created_at, seq);
CREATE INDEX customers_g{gen}_updated ON customers_g{gen} (last_status_update, seq);
CREATE INDEX customers_g{gen}_company_updated ON customers_g{gen} (company_id, last_status_update, seq);
CREATE INDEX customers_g{gen}_name ON customers_g{gen} (name_sort, seq);
CREATE INDEX customers_g{gen}_company_name ON customers_g{gen} (company_id, name_sort, seq);
-- Filters.
CREATE INDEX customers_g{gen}_status ON customers_g{gen} (status);
CREATE INDEX customers_g{gen}_nationality ON customers_g{gen} (nationality);
CREATE INDEX customers_g{gen}_risk ON customers_g{gen} (risk);
CREATE INDEX customers_g{gen}_video ON customers_g{gen} (video_call_status);
CREATE INDEX customers_g{gen}_level ON customers_g{gen} (verification_level);
CREATE INDEX customers_g{gen}_vstatus ON customers_g{gen} (verification_status);
CREATE INDEX customers_g{gen}_state ON customers_g{gen} (state);
CREATE INDEX customers_g{gen}_country ON customers_g{gen} (country);
CREATE INDEX customers_g{gen}_agent ON customers_g{gen} (created_by_agent);
CREATE INDEX customers_g{gen}_referral ON customers_g{gen} (referral_code);
CREATE INDEX customers_g{gen}_birth ON customers_g{gen} (birth_date);

-- Multi-valued filters: one row per (field, value) of a customer. Fields:
-- q (search terms, matched by prefix), tag, access_role, access_group,
-- doc_type, expiry.
CREATE TABLE customer_terms_g{gen} (
    field TEXT    NOT NULL,
    value TEXT    NOT NULL,
    seq   INTEGER NOT NULL,
    PRIMARY KEY (field, value, seq)
) STRICT, WITHOUT ROWID;

-- Customers per company, so an unfiltered list does not count a million
-- rows for its total.
CREATE TABLE customer_counts_g{gen} (
    company_id TEXT    PRIMARY KEY,
    n          INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
