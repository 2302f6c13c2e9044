-- Tables of one generation of the customers projection. {gen} is replaced
-- by the generation number. The store creates the tables with the
-- generation and each one-line CREATE INDEX statement when it activates the
-- generation: a rebuild fills bare tables and sorts every index once, at the
-- end, which is several times faster than keeping them up to date row by row.
-- Tables are made IF NOT EXISTS so that the store can run this on a
-- generation made by an older release to add what it lacks (upgrade.go);
-- generation numbers are never reused, so a new one never finds a table.

-- One row per customer, with the columns filters and sorts use. seq is
-- assigned on first insert and kept on replace; it breaks sort ties so pages
-- are stable. Times are unix nanoseconds (last_status_update 0 = never),
-- birth_date an ISO date or ''. The document is in customer_docs_g{gen}: kept
-- out of here, rows stay narrow, so the many rows a filter or a count visits
-- share few pages. tags, access_roles, access_groups and doc_types repeat the
-- customer's rows of customer_terms_g{gen} as one string each (every value
-- escaped and followed by a 0x1f separator, which also leads: see
-- valueSet), so that a filter on them can be checked inside an index that
-- holds the columns, without a probe per row. search holds the search terms
-- (field q) the same way, so that a looked-up row tells whether a word
-- starts one of them. expiries holds the expiry dates of the documents side
-- by side, or '*' (see expiriesOf), so that a filter on them can be checked
-- on the row. They default to '' for the tables of generations made before
-- they existed (see upgrade.go).
CREATE TABLE IF NOT EXISTS customers_g{gen} (
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
    aggregated_status   TEXT    NOT NULL,
    tags                TEXT    NOT NULL DEFAULT '',
    access_roles        TEXT    NOT NULL DEFAULT '',
    access_groups       TEXT    NOT NULL DEFAULT '',
    doc_types           TEXT    NOT NULL DEFAULT '',
    search              TEXT    NOT NULL DEFAULT '',
    expiries            TEXT    NOT NULL DEFAULT ''
) STRICT;

-- The customer as JSON (domain.Customer), and its rows of
-- customer_terms_g{gen} in a compact encoding, so that a replace rewrites
-- only the terms that changed.
CREATE TABLE IF NOT EXISTS customer_docs_g{gen} (
    seq   INTEGER PRIMARY KEY,
    terms BLOB NOT NULL,
    doc   BLOB NOT NULL
) STRICT;

-- Sorts: each key alone and after company_id, since every caller but a
-- superuser is scoped to one company. Each also holds every column a filter
-- reads (all but free text and document expiry), so a page walks one of
-- them in order and skips the rows that do not match without reading the
-- table, and a count of several filters scans one without a lookup per row.
-- (A lookup costs about as much as reading ten index entries.) The store
-- names them in its queries (see plan.go): keep the names and their order
-- of columns in step with it.
CREATE INDEX customers_g{gen}_by_created ON customers_g{gen} (created_at, seq, company_id, status, risk, verification_status, state, created_by_agent, country, nationality, video_call_status, verification_level, referral_code, birth_date, last_status_update, tags, access_roles, access_groups, doc_types);
CREATE INDEX customers_g{gen}_by_updated ON customers_g{gen} (last_status_update, seq, company_id, status, risk, verification_status, state, created_by_agent, country, nationality, video_call_status, verification_level, referral_code, birth_date, created_at, tags, access_roles, access_groups, doc_types);
CREATE INDEX customers_g{gen}_by_name ON customers_g{gen} (name_sort, seq, company_id, status, risk, verification_status, state, created_by_agent, country, nationality, video_call_status, verification_level, referral_code, birth_date, created_at, last_status_update, tags, access_roles, access_groups, doc_types);
CREATE INDEX customers_g{gen}_company_by_created ON customers_g{gen} (company_id, created_at, seq, status, risk, verification_status, state, created_by_agent, country, nationality, video_call_status, verification_level, referral_code, birth_date, last_status_update, tags, access_roles, access_groups, doc_types);
CREATE INDEX customers_g{gen}_company_by_updated ON customers_g{gen} (company_id, last_status_update, seq, status, risk, verification_status, state, created_by_agent, country, nationality, video_call_status, verification_level, referral_code, birth_date, created_at, tags, access_roles, access_groups, doc_types);
CREATE INDEX customers_g{gen}_company_by_name ON customers_g{gen} (company_id, name_sort, seq, status, risk, verification_status, state, created_by_agent, country, nationality, video_call_status, verification_level, referral_code, birth_date, created_at, last_status_update, tags, access_roles, access_groups, doc_types);
-- Filters, each followed by the default sort, so that one filter of a few
-- values reads its page in order and its count off the index alone. Status
-- is the filter of nearly every list and the one others are combined
-- with, so its indexes hold every filtered column too, and it has one for
-- each sort key: a deep page of status and another filter in any order
-- walks one in order and checks the other on its entries (at 1,000,000
-- customers, status and risk by last update, page 500: p95 about 70 ms,
-- against 115 ms through the sort index). The indexes of the columns a
-- customer keeps for life or changes seldom (nationality, country, agent,
-- referral code) also hold the other such columns: the company (every
-- caller but a superuser is scoped to one), the birth date and the
-- document types (age and document type match a third to a half of all
-- customers, so they are combined with others far more than read alone).
-- A risk, tag or status change never writes these indexes. The indexes of
-- the columns that change (risk, video call, verification, state) stay
-- narrow: their entries move with every change of their column, so the
-- columns they held would be paid for by every such write. (Holding the
-- three there too, three interleaved pairs at 1,000,000 customers gave a
-- held-lag p99 of the customers list 35-45 ms higher: no more than the
-- noise of those runs, but no write pays for them here.) Made wide, they
-- cut the events/s that writers held at the default read lag could append
-- by up to a third. plan.go's filterHeld and keptColumns name these
-- columns.
CREATE INDEX customers_g{gen}_status_created ON customers_g{gen} (status, created_at, seq, company_id, risk, verification_status, state, created_by_agent, country, nationality, video_call_status, verification_level, referral_code, birth_date, last_status_update, tags, access_roles, access_groups, doc_types);
CREATE INDEX customers_g{gen}_status_updated ON customers_g{gen} (status, last_status_update, seq, company_id, risk, verification_status, state, created_by_agent, country, nationality, video_call_status, verification_level, referral_code, birth_date, created_at, tags, access_roles, access_groups, doc_types);
CREATE INDEX customers_g{gen}_status_name ON customers_g{gen} (status, name_sort, seq, company_id, risk, verification_status, state, created_by_agent, country, nationality, video_call_status, verification_level, referral_code, birth_date, created_at, last_status_update, tags, access_roles, access_groups, doc_types);
CREATE INDEX customers_g{gen}_nationality_created ON customers_g{gen} (nationality, created_at, seq, company_id, birth_date, doc_types);
CREATE INDEX customers_g{gen}_risk_created ON customers_g{gen} (risk, created_at, seq);
CREATE INDEX customers_g{gen}_video_call_status_created ON customers_g{gen} (video_call_status, created_at, seq);
CREATE INDEX customers_g{gen}_verification_level_created ON customers_g{gen} (verification_level, created_at, seq);
CREATE INDEX customers_g{gen}_verification_status_created ON customers_g{gen} (verification_status, created_at, seq);
CREATE INDEX customers_g{gen}_state_created ON customers_g{gen} (state, created_at, seq);
CREATE INDEX customers_g{gen}_country_created ON customers_g{gen} (country, created_at, seq, company_id, birth_date, doc_types);
CREATE INDEX customers_g{gen}_created_by_agent_created ON customers_g{gen} (created_by_agent, created_at, seq, company_id, birth_date, doc_types);
CREATE INDEX customers_g{gen}_referral_code_created ON customers_g{gen} (referral_code, created_at, seq, company_id, birth_date, doc_types);
CREATE INDEX customers_g{gen}_birth ON customers_g{gen} (birth_date);

-- Multi-valued filters: one row per (field, value) of a customer. Fields:
-- q (search terms, matched by prefix), tag, access_role, access_group,
-- doc_type, expiry. For q and expiry, which are matched by a range of
-- values, prev is the customer's value of the field that sorts just before
-- this one (NULL for its first): a customer's values in a range are
-- consecutive in its own order, so exactly one of them, the one whose prev
-- is below the range, stands for the customer, and a range yields each
-- customer once without a DISTINCT.
-- created_at and company_id repeat the customer's (which a customer keeps
-- for life; a put that changes either rewrites its rows): the rows of one
-- value come in the default sort order, so a page of a lone filter on
-- terms, however deep, is read off these rows alone (ten thousand narrow
-- rows skipped instead of ten thousand customers looked up), and a
-- caller's company is checked on them too.
CREATE TABLE IF NOT EXISTS customer_terms_g{gen} (
    field      TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    company_id TEXT    NOT NULL,
    prev       TEXT,
    PRIMARY KEY (field, value, created_at, seq)
) STRICT, WITHOUT ROWID;

-- Customers per company, so an unfiltered list does not count a million
-- rows for its total.
CREATE TABLE IF NOT EXISTS customer_counts_g{gen} (
    company_id TEXT    PRIMARY KEY,
    n          INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Customers per company with each value of each filter that compares a
-- value (a column, or a term of tag, access_role, access_group, doc_type).
-- It answers the total of a list with one such filter at once, and tells
-- the store how many rows each filter of a longer list matches, which is
-- what it chooses a plan by. verification_level is written in decimal.
CREATE TABLE IF NOT EXISTS customer_values_g{gen} (
    field      TEXT    NOT NULL,
    value      TEXT    NOT NULL,
    company_id TEXT    NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (field, value, company_id)
) STRICT, WITHOUT ROWID;
